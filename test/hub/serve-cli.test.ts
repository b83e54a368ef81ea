/**
 * `modelsync serve` as an operator runs it: a process that prints its URL,
 * refuses a broken tokens file with file:line:col, and on SIGTERM lets an
 * in-flight download finish before exiting 0.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { CLI, cliAsync, tempDir } from '../helpers/env.ts';
import { sha256 } from '../helpers/hub.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function startServe(args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; url: string; stderr: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env: { ...process.env, MODELSYNC_LOG_LEVEL: 'info' } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, url: m[1]!, stderr: () => err, exited });
      }
    });
    child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
  });
}

describe('modelsync serve', () => {
  test('serves until SIGTERM, finishing an in-flight download first', async () => {
    const dir = tempDir();
    const secret = randomBytes(16).toString('hex');
    const tokens = join(dir, 'tokens.yaml');
    writeFileSync(tokens, `tokens:\n  - {name: ci, sha256: ${sha256(secret)}, role: publisher}\n`);
    const hub = await startServe(['--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--tokens', tokens]);
    const auth = { Authorization: `Bearer ${secret}` };

    const health = await fetch(`${hub.url}/healthz`);
    expect(health.status).toBe(200);
    await health.arrayBuffer();

    const bytes = randomBytes(24 << 20);
    const oid = sha(bytes);
    const b = await fetch(`${hub.url}/reg.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { ...auth, 'Content-Type': 'application/vnd.git-lfs+json' },
      body: JSON.stringify({ operation: 'upload', objects: [{ oid, size: bytes.length }] }),
    });
    const up = ((await b.json()) as { objects: Array<{ actions: { upload: { href: string; header: Record<string, string> } } }> }).objects[0]!.actions.upload;
    expect((await fetch(up.href, { method: 'PUT', headers: up.header, body: bytes })).status).toBe(200);

    // Start a download, stall it after the first chunk, then ask the hub to stop.
    const got = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const req = request(`${hub.url}/reg.git/info/lfs/objects/${oid}`, { headers: auth }, (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', (c: Buffer) => {
          chunks.push(c);
          res.pause();
          hub.child.kill('SIGTERM');
          setTimeout(() => {
            res.on('data', (d: Buffer) => chunks.push(d));
            res.resume();
          }, 300);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(got.length).toBe(bytes.length);
    expect(sha(got)).toBe(oid);
    expect(await hub.exited).toBe(0);
    expect(hub.stderr()).toContain('shutting down');
    expect(hub.stderr()).not.toContain(secret);
  });

  test('a broken tokens file stops it with file:line:col; a bad --listen is a usage error', async () => {
    const dir = tempDir();
    const tokens = join(dir, 'tokens.yaml');
    writeFileSync(tokens, 'tokens:\n  - {name: ci, sha256: nothex, role: publisher}\n  - {name: x, sha256: ' + 'a'.repeat(64) + ', role: king}\n');
    const r = await cliAsync(['serve', '--data', join(dir, 'data'), '--listen', '127.0.0.1:0', '--tokens', tokens], { cwd: dir, env: process.env });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${tokens}:2:`);
    expect(r.stderr).toContain(`${tokens}:3:`);
    expect(r.stderr).toContain('[ConfigError]');

    const l = await cliAsync(['serve', '--data', join(dir, 'data'), '--listen', 'nonsense'], { cwd: dir, env: process.env });
    expect(l.status).toBe(2);
    expect(l.stderr).toContain('--listen');
  });

  test('a port already in use is one line naming the address, not a crash', async () => {
    const dir = tempDir();
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const { port } = taken.address() as AddressInfo;
    try {
      const r = await cliAsync(['serve', '--data', join(dir, 'data'), '--listen', `127.0.0.1:${port}`], { cwd: dir, env: process.env });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(r.stderr).toContain('already in use');
      expect(r.stderr).not.toContain('internal error');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      taken.close();
    }
  });
});
