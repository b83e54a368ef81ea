/**
 * Hostile and abusive clients: each test is an attack or a misuse the hub
 * must survive without giving anything away, holding resources for ever or
 * changing what it stores.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gitAsync, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { openEventStream, startTestHub, type TestHub } from '../helpers/hub.ts';
import { raw } from './raw-http.ts';

const LFS = 'application/vnd.git-lfs+json';
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A raw TCP connection to the hub; resolves 'closed' once the hub hangs up. */
function openSocket(url: string): Promise<{ sock: Socket; received: () => string; closed: Promise<void> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let data = '';
    const sock = connect(Number(u.port), u.hostname, () => resolve({ sock, received: () => data, closed }));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('data', (d: Buffer) => (data += d.toString('latin1')));
    sock.on('error', () => {});
    sock.once('error', reject);
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms))]);
}

async function pushRepo(th: TestHub, repo: string): Promise<void> {
  const env = isolatedGitEnv();
  const work = join(tempDir(), 'w');
  await gitAsync(['init', '-q', '-b', 'main', work], { cwd: '/', env });
  writeTree(work, { 'README.md': 'hi\n' });
  await gitAsync(['add', '.'], { cwd: work, env });
  await gitAsync(['commit', '-qm', 'init'], { cwd: work, env });
  await gitAsync(['push', '-q', th.repoUrl(repo, th.secrets.publisher), 'main'], { cwd: work, env });
}

/** The upload action the hub grants the publisher for one object of "reg". */
async function uploadAction(th: TestHub, oid: string, size: number): Promise<{ href: string; header: Record<string, string> }> {
  const res = await fetch(`${th.url}/reg.git/info/lfs/objects/batch`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${th.secrets.publisher}`, 'Content-Type': LFS },
    body: JSON.stringify({ operation: 'upload', objects: [{ oid, size }] }),
  });
  return ((await res.json()) as { objects: Array<{ actions: { upload: { href: string; header: Record<string, string> } } }> }).objects[0]!.actions.upload;
}

describe('hostile clients against a hub with tokens', () => {
  let th: TestHub;
  const logLines: string[] = [];
  beforeAll(async () => {
    const logger = pino({ level: 'debug' }, { write: (l: string) => void logLines.push(l) });
    th = await startTestHub({ tokens: true, logger, limits: { idleTimeoutMs: 1500, eventSubscribersPerToken: 2 } });
    await pushRepo(th, 'reg');
  });
  afterAll(() => {
    const errors = logLines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50);
    expect(errors).toEqual([]);
  });

  test('a site token cannot reach receive-pack through a repeated ?service= (git reads the last one)', async () => {
    const site = { Authorization: `Bearer ${th.secrets.site}` };
    for (const q of ['service=git-upload-pack&service=git-receive-pack', 'service=git-upload-pack&service=git%2Dreceive-pack', 'service=git-upload-pack&x=1&service=git-receive-pack']) {
      const r = await raw(th.url, { path: `/reg.git/info/refs?${q}`, headers: site });
      const type = String(r.headers['content-type']);
      expect(type, q).not.toContain('receive-pack');
      expect(r.body.toString('latin1'), q).not.toContain('# service=git-receive-pack');
    }
    // The plain receive-pack advertisement stays a publisher's.
    const r = await raw(th.url, { path: '/reg.git/info/refs?service=git-receive-pack', headers: site });
    expect(r.status).toBe(403);
  });

  test('a status report nested too deeply is refused and cannot break the fleet view', async () => {
    const deep = `{"a":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
    const r = await raw(th.url, { method: 'POST', path: '/api/v1/sites/beta/status', headers: { Authorization: `Bearer ${th.secrets.site}`, 'Content-Type': 'application/json' }, body: deep });
    expect(r.status).toBe(422);
    expect(JSON.parse(r.body.toString()).error.code).toBe('InvalidReport');
    const list = await raw(th.url, { path: '/api/v1/sites', headers: { Authorization: `Bearer ${th.secrets.admin}` } });
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body.toString()).sites).toEqual([]);
  });

  test('garbage oids of any shape are per-object 422s, not a failed batch', async () => {
    const nested = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const r = await raw(th.url, {
      method: 'POST',
      path: '/reg.git/info/lfs/objects/batch',
      headers: { Authorization: `Bearer ${th.secrets.site}`, 'Content-Type': LFS },
      body: `{"operation":"download","objects":[{"oid":${nested},"size":1},{"oid":{"toString":1},"size":1},null,7]}`,
    });
    expect(r.status).toBe(200);
    const objs = JSON.parse(r.body.toString()).objects as Array<{ oid: string; error: { code: number } }>;
    expect(objs.map((o) => [typeof o.oid, o.error.code])).toEqual([
      ['string', 422],
      ['string', 422],
      ['string', 422],
      ['string', 422],
    ]);
  });

  test('an upload action is bound to the size the batch declared', async () => {
    const bytes = randomBytes(10_000);
    const oid = sha(bytes);
    const up = await uploadAction(th, oid, 100);
    const put = await fetch(up.href, { method: 'PUT', headers: up.header, body: bytes });
    expect(put.status).toBe(422);
    expect(((await put.json()) as { code: string }).code).toBe('SizeMismatch');
    const get = await fetch(`${th.url}/reg.git/info/lfs/objects/${oid}`, { headers: { Authorization: `Bearer ${th.secrets.admin}` } });
    expect(get.status).toBe(404);
    await get.arrayBuffer();
  });

  test('a chunked upload that runs past its granted size gets 413, like a Content-Length one, and stores nothing', async () => {
    const bytes = randomBytes(200_000);
    const oid = sha(bytes);
    const up = await uploadAction(th, oid, 1000);
    const { sock, received, closed } = await openSocket(th.url);
    sock.write(`PUT ${new URL(up.href).pathname} HTTP/1.1\r\nHost: x\r\nAuthorization: ${up.header.Authorization}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
    for (let i = 0; i < bytes.length; i += 50_000) {
      const c = bytes.subarray(i, i + 50_000);
      if (sock.writable) sock.write(Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n')]));
    }
    await within(closed, 5000, 'hub answering and closing');
    expect(received()).toMatch(/^HTTP\/1\.1 413 /);
    expect(received()).toContain('"code":"PayloadTooLarge"');
    const get = await fetch(`${th.url}/reg.git/info/lfs/objects/${oid}`, { headers: { Authorization: `Bearer ${th.secrets.admin}` } });
    expect(get.status).toBe(404);
    await get.arrayBuffer();
    expect(readdirSync(join(th.data, 'tmp'))).toEqual([]);
  });

  test('a refused request does not get to stream its body into the hub', async () => {
    const { sock, received, closed } = await openSocket(th.url);
    sock.write(`PUT /reg.git/info/lfs/objects/${'a'.repeat(64)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const chunk = randomBytes(64 << 10);
    const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
    // Keep sending as if the body were endless; the hub answers 401 and hangs up.
    const pump = setInterval(() => sock.writable && sock.write(frame), 5);
    try {
      await within(closed, 5000, 'hub closing the connection');
    } finally {
      clearInterval(pump);
    }
    expect(received()).toMatch(/^HTTP\/1\.1 401 /);
  });

  test('a client that goes silent mid-request is disconnected after the idle timeout', async () => {
    const { sock, closed } = await openSocket(th.url);
    sock.write(`PUT /reg.git/info/lfs/objects/${'b'.repeat(64)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${th.secrets.publisher}\r\nContent-Length: 1000000\r\n\r\n`);
    sock.write(randomBytes(1000));
    const started = Date.now();
    await within(closed, 6000, 'idle timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    // Nothing of the upload stays behind.
    for (let i = 0; i < 50 && readdirSync(join(th.data, 'tmp')).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(readdirSync(join(th.data, 'tmp'))).toEqual([]);
  });

  test('event streams outlive the idle timeout; one token may hold only a few of them', async () => {
    const site = { Authorization: `Bearer ${th.secrets.site}` };
    const a = await openEventStream(`${th.url}/api/v1/events`, site);
    const b = await openEventStream(`${th.url}/api/v1/events`, site);
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await raw(th.url, { path: '/api/v1/events', headers: site });
    expect(c.status).toBe(503);
    expect(c.headers['retry-after']).toBeDefined();
    // Another token is not starved by this one.
    const d = await openEventStream(`${th.url}/api/v1/events`, { Authorization: `Bearer ${th.secrets.admin}` });
    expect(d.status).toBe(200);
    // Past the idle timeout (1.5 s here) the streams are still open and deliver.
    await new Promise((r) => setTimeout(r, 2200));
    await pushRepo(th, 'later');
    await expect(a.next((f) => f.event === 'ref' && f.data.includes('"later"'), 5000)).resolves.toBeDefined();
    for (const s of [a, b, d]) s.close();
  });

  test('a download aborted half-way releases its file and its request slot', async () => {
    const bytes = randomBytes(24 << 20);
    const oid = sha(bytes);
    const up = await uploadAction(th, oid, bytes.length);
    expect((await fetch(up.href, { method: 'PUT', headers: up.header, body: bytes })).status).toBe(200);
    const openObjectFds = (): number =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).endsWith(oid);
        } catch {
          return false;
        }
      }).length;

    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const req = request(`${th.url}/reg.git/info/lfs/objects/${oid}`, { headers: { Authorization: `Bearer ${th.secrets.site}` }, agent: false }, (r) => {
          let got = 0;
          r.on('data', (c: Buffer) => {
            got += c.length;
            if (got > (i + 1) << 20) req.destroy();
          });
        });
        req.on('close', () => resolve());
        req.on('error', () => {});
        req.end();
      });
    }
    for (let i = 0; i < 100 && (openObjectFds() > 0 || th.hub.metrics.value('modelsync_hub_http_inflight_requests') > 0); i++) await new Promise((r) => setTimeout(r, 20));
    expect(openObjectFds()).toBe(0);
    expect(th.hub.metrics.value('modelsync_hub_http_inflight_requests')).toBe(0);
  });
});

describe('hostile clients against a hub without tokens', () => {
  test('a request for another host name (DNS rebinding from a browser) is refused', async () => {
    const th = await startTestHub();
    for (const host of ['evil.example', 'evil.example:80', `127.0.0.1.evil.example:${new URL(th.url).port}`]) {
      const r = await raw(th.url, { path: '/api/v1/sites', headers: { Host: host } });
      expect(r.status, host).toBe(403);
    }
    for (const host of [new URL(th.url).host, `localhost:${new URL(th.url).port}`, '127.0.0.1', `[::1]:${new URL(th.url).port}`]) {
      const r = await raw(th.url, { path: '/api/v1/sites', headers: { Host: host } });
      expect(r.status, host).toBe(200);
    }
  });
});

describe('connections are bounded', () => {
  test('headers dripped a byte at a time get 408 and a hang-up at the headers deadline, though the line is never idle', async () => {
    const th = await startTestHub({ tokens: true, limits: { headersTimeoutMs: 600, idleTimeoutMs: 60_000 } });
    const { sock, received, closed } = await openSocket(th.url);
    const header = 'GET /reg.git/info/refs?service=git-upload-pack HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(1000);
    let i = 0;
    const drip = setInterval(() => sock.writable && i < header.length && sock.write(header[i++]!), 50);
    const started = Date.now();
    try {
      await within(closed, 5000, 'headers deadline');
    } finally {
      clearInterval(drip);
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(received()).toMatch(/^HTTP\/1\.1 408 /);
    // A prompt client on the same hub is unaffected.
    expect((await raw(th.url, { path: '/healthz' })).status).toBe(200);
  });

  test('past the connection cap, new connections are closed at once; a freed slot is usable again', async () => {
    const th = await startTestHub({ tokens: true, limits: { maxConnections: 2 } });
    const a = await openSocket(th.url);
    const b = await openSocket(th.url);
    await new Promise((r) => setTimeout(r, 100));
    const c = await openSocket(th.url);
    await within(c.closed, 2000, 'connection over the cap closed');
    expect(c.received()).toBe('');
    a.sock.destroy();
    await a.closed;
    await new Promise((r) => setTimeout(r, 100));
    expect((await raw(th.url, { path: '/healthz' })).status).toBe(200);
    b.sock.destroy();
  });
});

describe('git http-backend processes are bounded', () => {
  test('past the cap, git requests wait in a short queue, then get 503', async () => {
    const th = await startTestHub({ tokens: true, limits: { gitProcesses: 1, gitQueue: 1 } });
    await pushRepo(th, 'reg');
    const auth = `Authorization: Bearer ${th.secrets.site}\r\n`;
    // Holds the only slot: git waits for a body that never finishes.
    const holder = await openSocket(th.url);
    holder.sock.write(`POST /reg.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/x-git-upload-pack-request\r\nContent-Length: 100\r\n\r\n0032want`);
    await new Promise((r) => setTimeout(r, 300));
    // Queued behind it.
    const queued = raw(th.url, { path: '/reg.git/info/refs?service=git-upload-pack', headers: { Authorization: `Bearer ${th.secrets.site}` } });
    await new Promise((r) => setTimeout(r, 200));
    const refused = await raw(th.url, { path: '/reg.git/info/refs?service=git-upload-pack', headers: { Authorization: `Bearer ${th.secrets.site}` } });
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBeDefined();
    holder.sock.destroy();
    expect((await within(queued, 10_000, 'queued request')).status).toBe(200);
  });
});

describe('one token cannot take every git process slot', () => {
  test('slow upload-pack bodies from a site token fill only its share, the rest queue; a publisher still pushes', async () => {
    const th = await startTestHub({ tokens: true, limits: { gitProcesses: 4, gitProcessesPerToken: 2 } });
    await pushRepo(th, 'reg');
    const slow: Array<Awaited<ReturnType<typeof openSocket>>> = [];
    try {
      for (let i = 0; i < 4; i++) {
        const s = await openSocket(th.url);
        // A body announced but dripped: each request holds its slot for as long as the client likes.
        s.sock.write(`POST /reg.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${th.secrets.site}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: 100\r\n\r\n0032want`);
        slow.push(s);
        await new Promise((r) => setTimeout(r, 100));
      }
      // Past its share the token's requests wait for its own slots (agents sharing a token queue, not fail).
      await new Promise((r) => setTimeout(r, 200));
      expect(slow.map((s) => /^HTTP\/1\.1 (\d+)/.exec(s.received())?.[1] ?? 'waiting')).toEqual(['waiting', 'waiting', 'waiting', 'waiting']);
      expect(th.hub.metrics.value('modelsync_hub_git_processes')).toBe(2);
      // Two slots are left for everyone else: the publisher's push goes through while the site's requests still hang.
      await within(pushRepo(th, 'reg2'), 15_000, 'publisher push');
      expect(th.hub.metrics.value('modelsync_hub_git_processes')).toBe(2);
      // When the dripping requests go away, the queued ones get their turn.
      slow[0]!.sock.destroy();
      slow[1]!.sock.destroy();
      await new Promise((r) => setTimeout(r, 300));
      expect(th.hub.metrics.value('modelsync_hub_git_processes')).toBe(2);
    } finally {
      for (const s of slow) s.sock.destroy();
    }
  });
});

describe('git request bodies are bounded after decompression', () => {
  test('a small gzip body that inflates into a pack over the limit is refused, and no ref moves', async () => {
    const th = await startTestHub({ tokens: true, limits: { gitBodyBytes: 1 << 20 } });
    await pushRepo(th, 'reg');
    const env = isolatedGitEnv();
    const work = join(tempDir(), 'bomb');
    await gitAsync(['init', '-q', '-b', 'main', work], { cwd: '/', env });
    writeTree(work, { 'zeros.bin': Buffer.alloc(8 << 20) });
    await gitAsync(['add', '.'], { cwd: work, env });
    await gitAsync(['commit', '-qm', 'bomb'], { cwd: work, env });
    const commit = (await gitAsync(['rev-parse', 'HEAD'], { cwd: work, env })).stdout.trim();
    // Stored (level 0) deflate in the pack, so the pack is as big as the data; gzip then shrinks the body to almost nothing.
    const pack = execFileSync('git', ['-c', 'pack.compression=0', 'pack-objects', '--stdout', '--revs'], { cwd: work, env, input: `${commit}\n`, maxBuffer: 64 << 20 });
    expect(pack.length).toBeGreaterThan(8 << 20);
    const command = `${'0'.repeat(40)} ${commit} refs/heads/bomb\0report-status\n`;
    const pkt = `${(command.length + 4).toString(16).padStart(4, '0')}${command}0000`;
    const body = gzipSync(Buffer.concat([Buffer.from(pkt), pack]));
    expect(body.length).toBeLessThan(1 << 20);
    const r = await raw(th.url, {
      method: 'POST',
      path: '/reg.git/git-receive-pack',
      headers: { Authorization: `Bearer ${th.secrets.publisher}`, 'Content-Type': 'application/x-git-receive-pack-request', 'Content-Encoding': 'gzip', 'Content-Length': body.length },
      body,
    });
    expect(r.body.toString('latin1')).toMatch(/unpack (?!ok)/);
    const refs = await raw(th.url, { path: '/reg.git/info/refs?service=git-upload-pack', headers: { Authorization: `Bearer ${th.secrets.site}` } });
    expect(refs.body.toString('latin1')).not.toContain('refs/heads/bomb');
  });
});

describe('the data directory', () => {
  test('a symlink planted where an object belongs is not served, whatever it points at', async () => {
    const th = await startTestHub({ tokens: true });
    await pushRepo(th, 'reg');
    const secret = Buffer.from('not an object: a file elsewhere on the hub host\n');
    const outside = join(tempDir(), 'secret.txt');
    writeFileSync(outside, secret);
    const oid = sha(secret);
    const path = join(th.data, 'repos', 'reg.git', 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
    mkdirSync(dirname(path), { recursive: true });
    symlinkSync(outside, path);
    const site = { Authorization: `Bearer ${th.secrets.site}` };
    const get = await raw(th.url, { path: `/reg.git/info/lfs/objects/${oid}`, headers: site });
    expect(get.status).toBe(404);
    expect(get.body.toString()).not.toContain('elsewhere');
    const res = await fetch(`${th.url}/reg.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { ...site, 'Content-Type': LFS },
      body: JSON.stringify({ operation: 'download', objects: [{ oid, size: secret.length }] }),
    });
    expect(((await res.json()) as { objects: Array<{ error?: { code: number } }> }).objects[0]!.error?.code).toBe(404);
  });
});
