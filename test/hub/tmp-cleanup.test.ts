/**
 * A hub killed mid-upload (kill -9) leaves the partial upload in <data>/tmp;
 * the next start removes it and says so (issue 9 item 5).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { CLI, tempDir } from '../helpers/env.ts';
import { sha256 } from '../helpers/hub.ts';

const children: ChildProcessWithoutNullStreams[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function serve(data: string, tokens: string): Promise<{ child: ChildProcessWithoutNullStreams; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--data', data, '--listen', '127.0.0.1:0', '--tokens', tokens], { env: { ...process.env, MODELSYNC_LOG_LEVEL: 'info' } });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, url: m[1]!, stderr: () => err });
      }
    });
    child.on('exit', () => reject(new Error(`serve exited early: ${err}`)));
  });
}

const tmpFiles = (data: string): Array<{ name: string; size: number }> =>
  readdirSync(join(data, 'tmp')).map((name) => ({ name, size: statSync(join(data, 'tmp', name)).size }));

it('removes the partial uploads a killed hub left in <data>/tmp when it starts again', { timeout: 60_000 }, async () => {
  const dir = tempDir('modelsync-hubtmp-');
  const data = join(dir, 'data');
  const secret = randomBytes(16).toString('hex');
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(tokens, `tokens:\n  - {name: ci, sha256: ${sha256(secret)}, role: publisher}\n`);
  const first = await serve(data, tokens);

  // An upload of 8 MiB that sends 2 MiB and then waits: the hub streams it into tmp/.
  const oid = 'ab'.repeat(32);
  // The batch request creates the repository, as git lfs push does.
  const batch = await fetch(`${first.url}/models.git/info/lfs/objects/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/vnd.git-lfs+json', accept: 'application/vnd.git-lfs+json' },
    body: JSON.stringify({ operation: 'upload', transfers: ['basic'], objects: [{ oid, size: 8 << 20 }] }),
  });
  expect(batch.status, await batch.text()).toBe(200);
  const req = http.request(`${first.url}/models.git/info/lfs/objects/${oid}`, {
    method: 'PUT', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/octet-stream', 'content-length': String(8 << 20) },
  });
  req.on('error', () => {});
  req.write(randomBytes(2 << 20));
  const end = Date.now() + 15_000;
  while (!tmpFiles(data).some((f) => f.size >= 2 << 20)) {
    if (Date.now() > end) throw new Error(`no partial upload in tmp/: ${JSON.stringify(tmpFiles(data))} ${first.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  req.destroy();
  expect(tmpFiles(data)).toEqual([expect.objectContaining({ size: 2 << 20 })]);

  const second = await serve(data, tokens);
  expect(tmpFiles(data)).toEqual([]);
  expect(second.stderr()).toMatch(/removed partial uploads an earlier hub left in tmp\//);
  expect(second.stderr()).toMatch(new RegExp(`"bytes":${2 << 20}`));
  second.child.kill('SIGTERM');
  await new Promise((r) => second.child.once('exit', r));
});
