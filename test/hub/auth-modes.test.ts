/**
 * Who gets in: loopback-only without a tokens file, and no secret ever in a
 * log line or an error.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { startHub } from '../../src/hub/index.ts';
import { gitAsync, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

function captureLogger(): { logger: pino.Logger; text: () => string } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { logger, text: () => lines.join('') };
}

const externalIPv4 = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

describe('without a tokens file', () => {
  test('loopback clients clone and push without credentials', async () => {
    const th = await startTestHub();
    const env = isolatedGitEnv();
    const work = join(tempDir(), 'w');
    await gitAsync(['init', '-q', work], { cwd: '/', env });
    await gitAsync(['lfs', 'track', '*.bin'], { cwd: work, env });
    const blob = randomBytes(70_000);
    writeTree(work, { 'm.bin': blob });
    await gitAsync(['add', '.'], { cwd: work, env });
    await gitAsync(['commit', '-qm', 'm'], { cwd: work, env });
    await gitAsync(['push', '-q', th.repoUrl('reg'), 'main'], { cwd: work, env });
    const clone = join(tempDir(), 'c');
    await gitAsync(['clone', '-q', th.repoUrl('reg'), clone], { cwd: '/', env });
    expect(readFileSync(join(clone, 'm.bin')).equals(blob)).toBe(true);
  });

  test('says so at start, and refuses peers that are not loopback with 403', async () => {
    const cap = captureLogger();
    const hub = await startHub({ data: join(tempDir(), 'data'), listen: '0.0.0.0:0', logger: cap.logger });
    try {
      const warn = cap.text().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => l.level === 40);
      expect(warn?.msg).toMatch(/WITHOUT a tokens file: only loopback clients/);
      const port = new URL(hub.url).port;
      const local = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(local.status).toBe(200);
      await local.arrayBuffer();
      if (externalIPv4) {
        for (const path of ['/healthz', '/api/v1/sites', '/reg.git/info/refs?service=git-upload-pack']) {
          const res = await fetch(`http://${externalIPv4}:${port}${path}`);
          expect(res.status, path).toBe(403);
          expect(await res.text()).toContain('loopback');
        }
      }
    } finally {
      await hub.close();
    }
  });
});

describe('with a tokens file', () => {
  test('healthz and metrics are open; the API is not', async () => {
    const th = await startTestHub({ tokens: true });
    const health = await fetch(`${th.url}/healthz`);
    expect(await health.json()).toEqual({ ok: true });
    const metrics = await fetch(`${th.url}/metrics`);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await metrics.text();
    for (const name of ['modelsync_hub_http_requests_total', 'modelsync_hub_http_sent_bytes_total', 'modelsync_hub_http_received_bytes_total', 'modelsync_hub_lfs_objects_stored_total', 'modelsync_hub_event_subscribers']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/modelsync_hub_http_requests_total\{code="200",method="GET",route="healthz"\} 1/);
    const sites = await fetch(`${th.url}/api/v1/sites`);
    expect(sites.status).toBe(401);
    expect(sites.headers.get('www-authenticate')).toBe('Basic realm="modelsync"');
    expect(await sites.json()).toMatchObject({ error: { code: 'Unauthorized' } });
  });

  test('LFS hrefs follow --public-url (behind a proxy), else the Host the client used', async () => {
    const data = join(tempDir(), 'data');
    const cap = captureLogger();
    const hub = await startHub({ data, listen: '127.0.0.1:0', publicUrl: 'https://hub.example/', logger: cap.logger });
    try {
      // Without tokens, a proxy in front makes the whole network "loopback": the hub says so at start.
      const warnings = cap.text().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string }).filter((l) => l.level === 40);
      expect(warnings.map((w) => w.msg).join('\n')).toMatch(/--public-url without --tokens.*ADMIN rights/);
      const res = await fetch(`${hub.url}/reg.git/info/lfs/objects/batch`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/vnd.git-lfs+json' },
        body: JSON.stringify({ operation: 'upload', objects: [{ oid: 'a'.repeat(64), size: 1 }] }),
      });
      const body = (await res.json()) as { objects: Array<{ actions: { upload: { href: string } } }> };
      expect(body.objects[0]!.actions.upload.href).toBe(`https://hub.example/reg.git/info/lfs/objects/${'a'.repeat(64)}`);
    } finally {
      await hub.close();
    }
    await expect(startHub({ data, listen: '127.0.0.1:0', publicUrl: 'ftp://nope' })).rejects.toThrow(/--public-url/);
  });

  test('no secret appears in any log line or error body', async () => {
    const cap = captureLogger();
    const th = await startTestHub({ tokens: true, logger: cap.logger });
    const env = isolatedGitEnv();
    const work = join(tempDir(), 'w');
    await gitAsync(['init', '-q', work], { cwd: '/', env });
    await gitAsync(['lfs', 'track', '*.bin'], { cwd: work, env });
    writeTree(work, { 'm.bin': randomBytes(40_000) });
    await gitAsync(['add', '.'], { cwd: work, env });
    await gitAsync(['commit', '-qm', 'm'], { cwd: work, env });
    await gitAsync(['push', '-q', th.repoUrl('reg', th.secrets.publisher), 'main'], { cwd: work, env });
    await gitAsync(['clone', '-q', th.repoUrl('reg', th.secrets.site), join(tempDir(), 'c')], { cwd: '/', env });
    const site = await gitAsync(['push', th.repoUrl('reg', th.secrets.site), 'main:x'], { cwd: work, env, allowFail: true });
    expect(site.status).not.toBe(0);

    const bogus = `bogus-${randomBytes(8).toString('hex')}`;
    const bodies: string[] = [];
    for (const headers of [{ Authorization: `Bearer ${bogus}` }, { Authorization: `Basic ${Buffer.from(`u:${bogus}`).toString('base64')}` }, { Authorization: `Bearer msa1.${bogus}.x` }]) {
      const r = await fetch(`${th.url}/reg.git/info/lfs/objects/${'a'.repeat(64)}`, { headers });
      expect(r.status).toBe(401);
      bodies.push(await r.text());
    }
    const logs = cap.text();
    expect(logs).toContain('ref updated');
    for (const s of [th.secrets.admin, th.secrets.publisher, th.secrets.site, bogus, 'msa1.']) {
      expect(logs).not.toContain(s);
      for (const b of bodies) expect(b).not.toContain(s);
    }
    expect(logs.toLowerCase()).not.toContain('authorization');
  });
});
