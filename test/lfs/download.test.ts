/**
 * The HTTP fetcher against a real LFS-speaking server on 127.0.0.1: batches,
 * resume, retries, corruption, presigned hrefs on another host, expiry,
 * bandwidth cap, per-object errors, aborts, and no leaked credentials.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthError, ChecksumError, ModelsyncError, NetworkError, NotFoundError } from '../../src/errors.ts';
import { createFetcher, HttpFetcher } from '../../src/lfs/index.ts';
import { tempDir } from '../helpers/env.ts';
import { blob, FAST_RETRY, oidOf, runFetch } from './helpers.ts';
import { LfsTestServer, type LfsTestServerOptions } from './server.ts';

let servers: LfsTestServer[] = [];
let fetchers: HttpFetcher[] = [];
afterEach(async () => {
  for (const f of fetchers.splice(0)) f.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(opts: LfsTestServerOptions = {}): Promise<LfsTestServer> {
  const s = await LfsTestServer.start(opts);
  servers.push(s);
  return s;
}

function fetcherFor(s: LfsTestServer, opts: Partial<Parameters<typeof createFetcher>[0]> = {}): HttpFetcher {
  const f = createFetcher({ remote: s.remoteUrl, retry: FAST_RETRY, ...opts }) as HttpFetcher;
  fetchers.push(f);
  return f;
}

describe('HTTP fetcher', () => {
  it('fetches many objects in batches of at most 100, all verified', async () => {
    const s = await server({ token: 'tok-many' });
    const objects = Array.from({ length: 250 }, (_, i) => s.add(`object number ${i} ${'x'.repeat(i)}`));
    const f = fetcherFor(s, { token: 'tok-many' });
    const run = await runFetch(f, objects);
    expect(run.result.failed).toEqual([]);
    expect(run.result.fetched).toHaveLength(250);
    for (const o of objects) expect(run.verified.get(o.oid)).toBe(oidOf(s.objects.get(o.oid)!.data!));
    expect(s.batches).toHaveLength(3);
    expect(s.batches.every((b) => b.oids.length <= 100 && b.operation === 'download')).toBe(true);
    expect(new Set(s.batches.flatMap((b) => b.oids)).size).toBe(250);
    expect(s.batches[0]!.headers.accept).toBe('application/vnd.git-lfs+json');
    expect(run.result.bytesTransferred).toBe(objects.reduce((n, o) => n + o.size, 0));
    // Nothing left behind in tmpDir: every .part was handed over.
    expect(readdirSync(run.tmpDir)).toEqual([]);
  });

  it('resumes a partial file with a Range request and verifies the result', async () => {
    const s = await server();
    const data = blob(300_000);
    const obj = s.add(data);
    const tmpDir = join(tempDir(), 'tmp');
    mkdirSync(tmpDir);
    writeFileSync(join(tmpDir, `${obj.oid}.part`), data.subarray(0, 120_000));
    const run = await runFetch(fetcherFor(s), [obj], { tmpDir });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(data));
    const gets = s.downloadsOf(obj.oid);
    expect(gets).toHaveLength(1);
    expect(gets[0]!.headers.range).toBe('bytes=120000-');
    expect(gets[0]!.status).toBe(206);
    expect(run.result.bytesTransferred).toBe(180_000);
    expect(run.progress.at(-1)).toEqual({ oid: obj.oid, bytes: 300_000, size: 300_000 });
  });

  it('uses a complete partial file without any request', async () => {
    const s = await server();
    const data = blob(10_000);
    const obj = s.add(data);
    const tmpDir = join(tempDir(), 'tmp');
    mkdirSync(tmpDir);
    writeFileSync(join(tmpDir, `${obj.oid}.part`), data);
    const run = await runFetch(fetcherFor(s), [obj], { tmpDir });
    expect(run.result.fetched).toEqual([obj]);
    expect(s.requests).toHaveLength(0);
    expect(run.result.bytesTransferred).toBe(0);
  });

  it('restarts from zero when the server answers a Range with 200', async () => {
    const s = await server();
    const data = blob(100_000);
    const obj = s.add(data);
    s.fault(obj.oid, { ignoreRange: true });
    const tmpDir = join(tempDir(), 'tmp');
    mkdirSync(tmpDir);
    writeFileSync(join(tmpDir, `${obj.oid}.part`), data.subarray(0, 40_000));
    const run = await runFetch(fetcherFor(s), [obj], { tmpDir });
    expect(run.verified.get(obj.oid)).toBe(oidOf(data));
    expect(s.downloadsOf(obj.oid).map((r) => r.status)).toEqual([200]);
  });

  it('retries a connection dropped mid-body and resumes where it stopped', async () => {
    const s = await server();
    const data = blob(500_000);
    const obj = s.add(data);
    s.fault(obj.oid, { dropAfter: 200_000 }, { dropAfter: 150_000 });
    const run = await runFetch(fetcherFor(s), [obj]);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(data));
    const gets = s.downloadsOf(obj.oid);
    expect(gets).toHaveLength(3);
    expect(gets[0]!.headers.range).toBeUndefined();
    // Resumed from whatever reached the disk, which is never more than was sent.
    const resumed = gets.slice(1).map((g) => Number(/bytes=(\d+)-/.exec(g.headers.range ?? '')?.[1]));
    expect(resumed[0]).toBeGreaterThan(0);
    expect(resumed[0]).toBeLessThanOrEqual(200_000);
    expect(resumed[1]).toBeGreaterThan(resumed[0]!);
  });

  it('retries 5xx and 429 (honouring Retry-After) then succeeds', async () => {
    const s = await server();
    const obj = s.add(blob(20_000));
    s.fault(obj.oid, { status: 503 }, { status: 500 }, { status: 429, retryAfter: '1' });
    s.batchFaults.push({ status: 502 });
    const started = performance.now();
    const run = await runFetch(fetcherFor(s), [obj]);
    expect(run.result.failed).toEqual([]);
    expect(run.result.fetched).toEqual([obj]);
    expect(s.downloadsOf(obj.oid).map((r) => r.status)).toEqual([503, 500, 429, 200]);
    expect(s.batches).toHaveLength(2);
    expect(performance.now() - started).toBeGreaterThanOrEqual(950); // the Retry-After: 1
  });

  it('gives up after the configured retries with a NetworkError naming the status', async () => {
    const s = await server();
    const obj = s.add(blob(1000));
    s.fault(obj.oid, ...Array.from({ length: 10 }, () => ({ status: 503 })));
    const run = await runFetch(fetcherFor(s, { retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 2 } }), [obj]);
    expect(s.downloadsOf(obj.oid)).toHaveLength(3);
    expect(run.result.failed[0]!.error).toBeInstanceOf(NetworkError);
    expect(run.result.failed[0]!.error.message).toMatch(/503/);
    expect(run.result.failed[0]!.error.retry).toBe('generic');
  });

  it('does not retry a 4xx from the href', async () => {
    const s = await server();
    const obj = s.add(blob(1000));
    s.fault(obj.oid, { status: 400, body: 'bad request' }, { status: 400 });
    const run = await runFetch(fetcherFor(s), [obj]);
    expect(s.downloadsOf(obj.oid)).toHaveLength(1);
    const err = run.result.failed[0]!.error;
    expect(err).toBeInstanceOf(NetworkError);
    expect(err.retry).toBe('stalling');
    expect(err.message).toMatch(/400.*bad request/);
  });

  it('does not retry a refused batch request (401 → AuthError)', async () => {
    const s = await server({ token: 'right' });
    const obj = s.add('x');
    const run = await runFetch(fetcherFor(s, { token: 'wrong' }), [obj]);
    expect(s.batches).toHaveLength(1);
    expect(run.result.failed[0]!.error).toBeInstanceOf(AuthError);
    expect(run.result.failed[0]!.error.message).toMatch(/401/);
  });

  it('refuses corrupted bytes: ChecksumError, nothing handed over, .part removed, not retried', async () => {
    const s = await server();
    const good = s.add(blob(70_000));
    const bad = s.add(blob(90_000));
    s.corrupt.add(bad.oid);
    const run = await runFetch(fetcherFor(s), [good, bad]);
    expect(run.result.fetched).toEqual([good]);
    expect(run.verified.has(bad.oid)).toBe(false);
    const err = run.result.failed[0]!.error;
    expect(err).toBeInstanceOf(ChecksumError);
    expect(err.message).toMatch(/checksum mismatch/);
    expect(err.data.oid).toBe(bad.oid);
    expect(existsSync(join(run.tmpDir, `${bad.oid}.part`))).toBe(false);
    expect(s.downloadsOf(bad.oid)).toHaveLength(1);
  });

  it('downloads again from zero when a resumed file fails its checksum (the old prefix was bad)', async () => {
    const s = await server();
    const data = blob(50_000);
    const obj = s.add(data);
    const tmpDir = join(tempDir(), 'tmp');
    mkdirSync(tmpDir);
    writeFileSync(join(tmpDir, `${obj.oid}.part`), blob(20_000)); // garbage prefix
    const run = await runFetch(fetcherFor(s), [obj], { tmpDir });
    expect(run.verified.get(obj.oid)).toBe(oidOf(data));
    expect(s.downloadsOf(obj.oid).map((r) => r.headers.range)).toEqual(['bytes=20000-', undefined]);
  });

  it('follows hrefs on another host with their own headers and without our Authorization', async () => {
    const s = await server({ token: 'tok-presigned', hrefs: 'storage' });
    const objects = [s.add(blob(30_000)), s.add(blob(40_000))];
    const run = await runFetch(fetcherFor(s, { token: 'tok-presigned' }), objects);
    expect(run.result.failed).toEqual([]);
    const storage = s.requests.filter((r) => r.server === 'storage');
    expect(storage).toHaveLength(2);
    for (const r of storage) {
      expect(r.headers[s.storageHeader.name]).toBe(s.storageHeader.value);
      expect(r.headers.authorization).toBeUndefined();
    }
    expect(s.batches[0]!.headers.authorization).toMatch(/^Basic /);
  });

  it('follows a redirect to presigned storage without forwarding our Authorization', async () => {
    const s = await server({ token: 'tok-redirect' });
    const obj = s.add(blob(5000));
    s.fault(obj.oid, { redirectToStorage: true });
    const run = await runFetch(fetcherFor(s, { token: 'tok-redirect' }), [obj]);
    expect(run.result.failed).toEqual([]);
    const [first, second] = s.downloadsOf(obj.oid);
    expect(first!.server).toBe('lfs');
    expect(first!.headers.authorization).toMatch(/^Basic /);
    expect(second!.server).toBe('storage');
    expect(second!.headers.authorization).toBeUndefined();
  });

  it('sends our Authorization to same-origin hrefs', async () => {
    const s = await server({ token: 'tok-same' });
    const obj = s.add(blob(1000));
    const run = await runFetch(fetcherFor(s, { token: 'tok-same' }), [obj]);
    expect(run.result.fetched).toEqual([obj]);
    expect(s.downloadsOf(obj.oid)[0]!.headers.authorization).toMatch(/^Basic /);
  });

  it('asks the batch API again for actions that expired before use', async () => {
    // First batch: links valid 2 s (inside the 5 s margin); later batches: an hour.
    const s = await server({ hrefs: 'storage', expiresIn: (_oid, n) => (n === 1 ? 2 : 3600) });
    const objects = [s.add(blob(1000)), s.add(blob(2000)), s.add(blob(3000))];
    const run = await runFetch(fetcherFor(s, { concurrency: 1 }), objects);
    expect(run.result.failed).toEqual([]);
    expect(run.result.fetched).toHaveLength(3);
    expect(s.batches.map((b) => b.oids.length)).toEqual([3, 2]);
    expect(s.requests.filter((r) => r.server === 'storage').every((r) => r.status === 200)).toBe(true);
  });

  it('asks for a new href once when the storage host refuses an expired one', async () => {
    const s = await server({ hrefs: 'storage' });
    const obj = s.add(blob(1000));
    s.fault(obj.oid, { status: 403, body: 'Request has expired' });
    const run = await runFetch(fetcherFor(s), [obj]);
    expect(run.result.fetched).toEqual([obj]);
    expect(s.batches).toHaveLength(2);
  });

  it('caps bandwidth across concurrent transfers', async () => {
    const s = await server();
    const objects = Array.from({ length: 4 }, () => s.add(blob(64 * 1024)));
    const f = fetcherFor(s, { limitKbps: 1024, concurrency: 4 }); // 128 000 bytes/s in all
    const started = performance.now();
    const run = await runFetch(f, objects);
    const elapsed = (performance.now() - started) / 1000;
    expect(run.result.fetched).toHaveLength(4);
    // 262 144 bytes at 128 000 B/s with a 25 600-byte burst: at least 1.85 s.
    expect(elapsed).toBeGreaterThanOrEqual((4 * 64 * 1024 - 25_600) / 128_000 - 0.05);
  });

  it('reports a per-object 404 while the other objects succeed', async () => {
    const s = await server();
    const a = s.add('alpha');
    const b = { oid: 'ab'.repeat(32), size: 12 };
    const c = s.add('gamma');
    s.objectErrors.set(s.add('delta').oid, { code: 410, message: 'gone' });
    const gone = { oid: [...s.objectErrors.keys()][0]!, size: 5 };
    const run = await runFetch(fetcherFor(s), [a, b, c, gone]);
    expect(run.result.fetched.map((o) => o.oid).sort()).toEqual([a.oid, c.oid].sort());
    const byOid = new Map(run.result.failed.map((f) => [f.obj.oid, f.error]));
    expect(byOid.get(b.oid)).toBeInstanceOf(NotFoundError);
    expect(byOid.get(b.oid)!.message).toMatch(/not found/);
    expect(byOid.get(gone.oid)).toBeInstanceOf(NotFoundError);
    expect(byOid.get(gone.oid)!.data.status).toBe(410);
    expect(s.batches).toHaveLength(1);
  });

  it('retries a body that stalls past the idle timeout', async () => {
    const s = await server();
    const data = blob(200_000);
    const obj = s.add(data);
    s.fault(obj.oid, { stallAfter: 100_000 });
    const run = await runFetch(fetcherFor(s, { timeoutMs: 300 }), [obj]);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(data));
    expect(s.downloadsOf(obj.oid)[1]!.headers.range).toMatch(/^bytes=\d+-$/);
  });

  for (const [label, size] of [['node:http', 200_000], ['wire.ts', 3 << 20]] as const) {
    it(`a body gone silent on a dead connection (${label}) resumes on a new one once the server answers, not after the idle timeout`, async () => {
      // The connection stays open and silent (as after a link drop that lost the NAT state) while
      // new connections are answered: the client probes after STALL_PROBE_MS (5 s) of silence
      // and resumes with a Range request, well before its 30 s idle timeout would have fired.
      const s = await server();
      const data = blob(size);
      const obj = s.add(data);
      s.fault(obj.oid, { stallAfter: Math.floor(size / 2) });
      const t0 = Date.now();
      const run = await runFetch(fetcherFor(s, { timeoutMs: 30_000 }), [obj]);
      const took = Date.now() - t0;
      expect(run.result.failed).toEqual([]);
      expect(run.verified.get(obj.oid)).toBe(oidOf(data));
      expect(s.requests.some((r) => r.method === 'HEAD' && r.path.includes(obj.oid))).toBe(true);
      const gets = s.downloadsOf(obj.oid);
      expect(gets).toHaveLength(2);
      expect(gets[1]!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
      expect(took).toBeLessThan(25_000);
    }, 40_000);
  }

  it('stops on abort, keeping the partial file for the next pass', async () => {
    const s = await server();
    const data = blob(400_000);
    const obj = s.add(data);
    const controller = new AbortController();
    const tmpDir = join(tempDir(), 'tmp');
    const f = fetcherFor(s, { limitKbps: 800 }); // 100 kB/s: four seconds for the object
    setTimeout(() => controller.abort(new Error('stop now')), 700);
    await expect(runFetch(f, [obj], { tmpDir, signal: controller.signal })).rejects.toThrow('stop now');
    const part = join(tmpDir, `${obj.oid}.part`);
    expect(existsSync(part)).toBe(true);
    // The next pass resumes it.
    const run = await runFetch(fetcherFor(s), [obj], { tmpDir });
    expect(run.verified.get(obj.oid)).toBe(oidOf(data));
    expect(s.downloadsOf(obj.oid).at(-1)!.headers.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('handles the empty object without a request, and refuses invalid oids', async () => {
    const s = await server();
    const empty = { oid: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', size: 0 };
    const run = await runFetch(fetcherFor(s), [empty, { oid: '../../etc/passwd', size: 3 }]);
    expect(run.result.fetched).toEqual([empty]);
    expect(run.verified.get(empty.oid)).toBe(oidOf(''));
    expect(run.result.failed[0]!.error.code).toBe('InvalidObject');
    expect(s.requests).toHaveLength(0);
  });

  it('never puts the token in an error, whichever way it fails', async () => {
    const token = 'sekrit-token-4f9a8e7d';
    const s = await server({ token });
    const obj = s.add(blob(1000));
    const missing = { oid: 'cd'.repeat(32), size: 10 };
    const errors: ModelsyncError[] = [];
    const collect = (r: Awaited<ReturnType<typeof runFetch>>) => errors.push(...r.result.failed.map((f) => f.error));

    // Wrong server answer for the token (401), token in the URL, per-object 404, exhausted 5xx, unreachable host.
    collect(await runFetch(fetcherFor(s, { token: `${token}-wrong` }), [obj]));
    const inUrl = s.remoteUrl.replace('http://', `http://ci:${token}-wrong@`);
    collect(await runFetch(fetcherFor(s, { remote: inUrl }), [obj, missing]));
    s.fault(obj.oid, ...Array.from({ length: 10 }, () => ({ status: 500, body: `echo ${token}` })));
    collect(await runFetch(fetcherFor(s, { token, retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 1 } }), [obj]));
    const closed = await server();
    const deadUrl = closed.remoteUrl.replace('http://', `http://ci:${token}@`);
    await closed.close();
    servers = servers.filter((x) => x !== closed);
    collect(await runFetch(fetcherFor(s, { remote: deadUrl, retry: { retries: 1, baseDelayMs: 1, maxDelayMs: 1 } }), [obj]));

    expect(errors.map((e) => e.code).sort()).toEqual(['AuthError', 'AuthError', 'AuthError', 'NetworkError', 'NetworkError'].sort());
    for (const e of errors) {
      const everything = `${e.message}\n${e.stack}\n${JSON.stringify(e.toJSON())}\n${String((e as { cause?: unknown }).cause ?? '')}`;
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(Buffer.from(`ci:${token}`).toString('base64'));
    }
  });
});

describe('HTTP fetcher logs', () => {
  it('never puts the token in a log line, even when a server echoes it back in an error body', async () => {
    const token = 'sekrit-token-77aa1c';
    const s = await server({ token });
    const obj = s.add(blob(1000));
    s.fault(obj.oid, ...Array.from({ length: 3 }, () => ({ status: 503, body: `upstream said: bad credentials ${token} / ${Buffer.from(`modelsync:${token}`).toString('base64')}` })));
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    const run = await runFetch(fetcherFor(s, { token, logger }), [obj]);
    expect(run.result.failed).toEqual([]);
    const text = lines.join('');
    expect(text).toContain('retrying');
    expect(text).not.toContain(token);
    expect(text).not.toContain(Buffer.from(`modelsync:${token}`).toString('base64'));
  });
});

describe('HTTP fetcher, server down', () => {
  it('fails every object quickly with one clear error when the batch API stays unreachable', async () => {
    const s = await LfsTestServer.start();
    const remote = s.remoteUrl;
    const objects = Array.from({ length: 250 }, (_, i) => s.add(`o${i}`));
    await s.close();
    const f = createFetcher({ remote, retry: { retries: 2, baseDelayMs: 1, maxDelayMs: 2 } }) as HttpFetcher;
    fetchers.push(f);
    const run = await runFetch(f, objects);
    expect(run.result.fetched).toEqual([]);
    expect(run.result.failed).toHaveLength(250);
    expect(new Set(run.result.failed.map((x) => x.error.code))).toEqual(new Set(['NetworkError']));
    expect(run.result.failed[0]!.error.message).toMatch(/ECONNREFUSED/);
    // One batch request and its retries, not one per group of 100.
    expect(f.lastBatchRequests).toBe(1);
  });
});
