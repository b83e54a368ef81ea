/**
 * The LFS API spoken directly over HTTP: what a client sees for uploads,
 * downloads with Range, bad bytes, and hostile requests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startTestHub, type TestHub } from '../helpers/hub.ts';
import { raw, type RawResponse } from './raw-http.ts';

const LFS = 'application/vnd.git-lfs+json';
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Every file under the data dir with its size: "nothing changed" means this is equal. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        out.push(`${relative(dir, p)}/`);
        walk(p);
      } else out.push(`${relative(dir, p)} ${statSync(p).size}`);
    }
  };
  walk(dir);
  return out.sort();
}

interface BatchObject {
  oid: string;
  size: number;
  actions?: Record<string, { href: string; header?: Record<string, string>; expires_in?: number }>;
  error?: { code: number; message: string };
}

describe('LFS over HTTP', () => {
  let th: TestHub;
  const batch = async (operation: 'upload' | 'download', objects: unknown[], secret: string, repo = 'registry'): Promise<BatchObject[]> => {
    const res = await fetch(`${th.url}/${repo}.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { ...th.auth(secret), 'Content-Type': LFS, Accept: LFS },
      body: JSON.stringify({ operation, transfers: ['basic'], objects }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/vnd\.git-lfs\+json/);
    return ((await res.json()) as { objects: BatchObject[] }).objects;
  };
  const upload = async (bytes: Buffer): Promise<string> => {
    const [o] = await batch('upload', [{ oid: sha(bytes), size: bytes.length }], th.secrets.publisher);
    const up = o!.actions!.upload!;
    const put = await fetch(up.href, { method: 'PUT', headers: { ...up.header, 'Content-Type': 'application/octet-stream' }, body: bytes });
    expect(put.status).toBe(200);
    const ver = o!.actions!.verify!;
    const v = await fetch(ver.href, { method: 'POST', headers: { ...ver.header, 'Content-Type': LFS }, body: JSON.stringify({ oid: sha(bytes), size: bytes.length }) });
    expect(v.status).toBe(200);
    return sha(bytes);
  };

  const logLines: string[] = [];
  beforeAll(async () => {
    const logger = pino({ level: 'info' }, { write: (l: string) => void logLines.push(l) });
    th = await startTestHub({ tokens: true, limits: { objectBytes: 8 << 20 }, logger });
  });

  afterAll(() => {
    // Interrupted transfers and hostile requests are the client's business: no hub errors, no 500s.
    const errors = logLines.filter((l) => (JSON.parse(l) as { level: number }).level >= 50);
    expect(errors).toEqual([]);
    expect(th.hub.metrics.render()).not.toMatch(/code="5\d\d"/);
  });

  test('upload, verify and download through the hrefs the batch API hands out', async () => {
    const bytes = randomBytes(300_000);
    const [o] = await batch('upload', [{ oid: sha(bytes), size: bytes.length }], th.secrets.publisher);
    expect(o!.actions!.upload!.href).toBe(`${th.url}/registry.git/info/lfs/objects/${sha(bytes)}`);
    expect(o!.actions!.upload!.expires_in).toBeGreaterThan(0);
    // The href carries its own short-lived credential, not the caller's secret.
    const auth = o!.actions!.upload!.header!.Authorization!;
    expect(auth).toMatch(/^Bearer msa1\./);
    expect(auth).not.toContain(th.secrets.publisher);
    await upload(bytes);

    const [d] = await batch('download', [{ oid: sha(bytes), size: bytes.length }], th.secrets.site);
    const res = await fetch(d!.actions!.download!.href, { headers: d!.actions!.download!.header });
    expect(res.status).toBe(200);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(bytes));

    // A site token works on the object URL directly too, as HTTP Basic password with any user name.
    const basic = await fetch(d!.actions!.download!.href, { headers: { Authorization: `Basic ${Buffer.from(`anyone:${th.secrets.site}`).toString('base64')}` } });
    expect(basic.status).toBe(200);
    await basic.arrayBuffer();
  });

  test('/metrics counts the bytes each route received, headers and body', async () => {
    const received = async (route: string): Promise<number> => {
      const text = await (await fetch(`${th.url}/metrics`)).text();
      const m = new RegExp(`^modelsync_hub_http_received_bytes_total\\{route="${route}"\\} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    const [uploadBefore, batchBefore, verifyBefore] = [await received('lfs-upload'), await received('lfs-batch'), await received('lfs-verify')];
    const bytes = randomBytes(200_000);
    await upload(bytes);
    const uploaded = (await received('lfs-upload')) - uploadBefore;
    // The body plus a request line and headers (a few hundred bytes), not more.
    expect(uploaded).toBeGreaterThan(bytes.length + 100);
    expect(uploaded).toBeLessThan(bytes.length + 4096);
    // Small requests, read in one go before the hub saw them, count too.
    expect((await received('lfs-batch')) - batchBefore).toBeGreaterThan(150);
    expect((await received('lfs-verify')) - verifyBefore).toBeGreaterThan(100);
  });

  test('an interrupted download resumes with Range: 206 and Content-Range, and the bytes add up', async () => {
    const bytes = randomBytes(4 << 20);
    const oid = await upload(bytes);
    const [d] = await batch('download', [{ oid, size: bytes.length }], th.secrets.site);
    const { href, header } = d!.actions!.download!;

    // First attempt: the connection drops after ~1 MiB.
    const partial = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let got = 0;
      const req = request(href, { headers: header }, (res) => {
        expect(res.statusCode).toBe(200);
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          got += c.length;
          if (got >= 1 << 20) {
            req.destroy();
            resolve(Buffer.concat(chunks));
          }
        });
      });
      req.on('error', (e) => (got >= 1 << 20 ? undefined : reject(e)));
      req.end();
    });
    expect(partial.length).toBeGreaterThanOrEqual(1 << 20);
    expect(partial.length).toBeLessThan(bytes.length);

    const rest = await fetch(href, { headers: { ...header, Range: `bytes=${partial.length}-` } });
    expect(rest.status).toBe(206);
    expect(rest.headers.get('content-range')).toBe(`bytes ${partial.length}-${bytes.length - 1}/${bytes.length}`);
    expect(Number(rest.headers.get('content-length'))).toBe(bytes.length - partial.length);
    const whole = Buffer.concat([partial, Buffer.from(await rest.arrayBuffer())]);
    expect(sha(whole)).toBe(oid);

    // A middle slice (chunk deltas) and the tail.
    const mid = await fetch(href, { headers: { ...header, Range: 'bytes=100-199' } });
    expect(mid.status).toBe(206);
    expect(Buffer.from(await mid.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);
    const tail = await fetch(href, { headers: { ...header, Range: 'bytes=-10' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(bytes.length - 10))).toBe(true);

    const beyond = await fetch(href, { headers: { ...header, Range: `bytes=${bytes.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
    await beyond.arrayBuffer();

    // Positions too large for any object (RFC 9110): a last-byte-pos past the end is trimmed to it,
    // a first-byte-pos past the end is 416, however many digits either has.
    const huge = '9'.repeat(30);
    const trimmed = await fetch(href, { headers: { ...header, Range: `bytes=${bytes.length - 5}-${huge}` } });
    expect([trimmed.status, trimmed.headers.get('content-range')]).toEqual([206, `bytes ${bytes.length - 5}-${bytes.length - 1}/${bytes.length}`]);
    expect(Buffer.from(await trimmed.arrayBuffer()).equals(bytes.subarray(bytes.length - 5))).toBe(true);
    const hugeStart = await fetch(href, { headers: { ...header, Range: `bytes=${huge}-` } });
    expect([hugeStart.status, hugeStart.headers.get('content-range')]).toEqual([416, `bytes */${bytes.length}`]);
    await hugeStart.arrayBuffer();
  });

  test('HEAD, the empty object and If-Range answer as HTTP says', async () => {
    const bytes = randomBytes(3000);
    const oid = await upload(bytes);
    const site = { Authorization: `Bearer ${th.secrets.site}` };
    const head = await raw(th.url, { method: 'HEAD', path: `/registry.git/info/lfs/objects/${oid}`, headers: site });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('3000');
    expect(head.headers.etag).toBe(`"${oid}"`);
    expect(head.body.length).toBe(0);
    const headRange = await raw(th.url, { method: 'HEAD', path: `/registry.git/info/lfs/objects/${oid}`, headers: { ...site, Range: 'bytes=10-19' } });
    expect([headRange.status, headRange.headers['content-length'], headRange.headers['content-range'], headRange.body.length]).toEqual([206, '10', 'bytes 10-19/3000', 0]);

    // If-Range with another validator: the whole object, not a slice of something else.
    const stale = await raw(th.url, { path: `/registry.git/info/lfs/objects/${oid}`, headers: { ...site, Range: 'bytes=10-', 'If-Range': '"other"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(bytes)).toBe(true);
    const fresh = await raw(th.url, { path: `/registry.git/info/lfs/objects/${oid}`, headers: { ...site, Range: 'bytes=10-', 'If-Range': `"${oid}"` } });
    expect(fresh.status).toBe(206);
    expect(fresh.body.equals(bytes.subarray(10))).toBe(true);

    const empty = await upload(Buffer.alloc(0));
    const get = await raw(th.url, { path: `/registry.git/info/lfs/objects/${empty}`, headers: site });
    expect([get.status, get.headers['content-length'], get.body.length]).toEqual([200, '0', 0]);
    const ranged = await raw(th.url, { path: `/registry.git/info/lfs/objects/${empty}`, headers: { ...site, Range: 'bytes=0-' } });
    expect([ranged.status, ranged.headers['content-range']]).toEqual([416, 'bytes */0']);
  });

  test('a small text object (a chunk index) goes gzip-compressed to a client that asks; binary objects, ranges and HEAD never do', async () => {
    const text = Buffer.from(JSON.stringify({ format: 'modelsync-chunks/1', chunks: Array.from({ length: 2000 }, (_, i) => [65536, sha(Buffer.from(String(i)))]) }));
    const oid = await upload(text);
    const site = { Authorization: `Bearer ${th.secrets.site}` };
    const path = `/registry.git/info/lfs/objects/${oid}`;
    const gz = await raw(th.url, { path, headers: { ...site, 'Accept-Encoding': 'gzip' } });
    expect([gz.status, gz.headers['content-encoding'], gz.headers.vary]).toEqual([200, 'gzip', 'Accept-Encoding']);
    expect(Number(gz.headers['content-length'])).toBe(gz.body.length);
    expect(gz.body.length).toBeLessThan(text.length * 0.7);
    expect(gunzipSync(gz.body).equals(text)).toBe(true);
    // Asked again (the next site): the same bytes, from the hub's cache of compressed objects.
    expect((await raw(th.url, { path, headers: { ...site, 'Accept-Encoding': 'br;q=1, gzip;q=0.5' } })).body.equals(gz.body)).toBe(true);

    for (const headers of [{}, { 'Accept-Encoding': 'gzip;q=0' }, { 'Accept-Encoding': 'identity' }, { 'Accept-Encoding': 'gzip', Range: 'bytes=0-' }] as Array<Record<string, string>>) {
      const plain = await raw(th.url, { path, headers: { ...site, ...headers } });
      expect([plain.headers['content-encoding'], plain.body.equals(text)]).toEqual([undefined, true]);
    }
    const head = await raw(th.url, { method: 'HEAD', path, headers: { ...site, 'Accept-Encoding': 'gzip' } });
    expect([head.headers['content-encoding'], head.headers['content-length']]).toEqual([undefined, String(text.length)]);

    // Model bytes are not text: sent as they are, though the client would take gzip.
    const bin = randomBytes(100_000);
    const binOid = await upload(bin);
    const b = await raw(th.url, { path: `/registry.git/info/lfs/objects/${binOid}`, headers: { ...site, 'Accept-Encoding': 'gzip' } });
    expect([b.headers['content-encoding'], b.body.equals(bin)]).toEqual([undefined, true]);
  });

  test('an upload whose bytes do not match its oid is rejected and never offered for download', async () => {
    const claimed = randomBytes(200_000);
    const oid = sha(claimed);
    const [o] = await batch('upload', [{ oid, size: claimed.length }], th.secrets.publisher);
    const up = o!.actions!.upload!;
    const before = snapshot(th.data);

    const wrong = randomBytes(claimed.length);
    const put = await fetch(up.href, { method: 'PUT', headers: up.header, body: wrong });
    expect(put.status).toBe(422);
    expect(put.headers.get('content-type')).toMatch(/^application\/vnd\.git-lfs\+json/);
    expect(((await put.json()) as { message: string }).message).toContain('hash');

    // Truncated: same oid, fewer bytes.
    const short = await fetch(up.href, { method: 'PUT', headers: up.header, body: claimed.subarray(0, 1000) });
    expect(short.status).toBe(422);
    await short.arrayBuffer();

    expect(snapshot(th.data)).toEqual(before);
    const [d] = await batch('download', [{ oid, size: claimed.length }], th.secrets.site);
    expect(d!.error).toEqual({ code: 404, message: 'object not found' });
    expect(d!.actions).toBeUndefined();
    const get = await fetch(`${th.url}/registry.git/info/lfs/objects/${oid}`, { headers: th.auth(th.secrets.site) });
    expect(get.status).toBe(404);
    await get.arrayBuffer();
    const ver = await fetch(o!.actions!.verify!.href, { method: 'POST', headers: { ...o!.actions!.verify!.header, 'Content-Type': LFS }, body: JSON.stringify({ oid, size: claimed.length }) });
    expect(ver.status).toBe(404);
    await ver.arrayBuffer();
    expect(th.hub.metrics.value('modelsync_hub_lfs_uploads_rejected_total', { reason: 'ChecksumMismatch' })).toBe(2);
  });

  test('an upload cut off mid-body leaves nothing behind', async () => {
    const bytes = randomBytes(2 << 20);
    const [o] = await batch('upload', [{ oid: sha(bytes), size: bytes.length }], th.secrets.publisher);
    const before = snapshot(th.data);
    const puts = (code: string): number => th.hub.metrics.value('modelsync_hub_http_requests_total', { route: 'lfs-upload', method: 'PUT', code });
    const [ok, aborted] = [puts('200'), puts('499')];
    const up = o!.actions!.upload!;
    await new Promise<void>((resolve) => {
      const req = request(up.href, { method: 'PUT', headers: { ...up.header, 'Content-Length': bytes.length } });
      req.on('error', () => resolve());
      req.write(bytes.subarray(0, 500_000), () => setTimeout(() => req.destroy(), 50));
      req.on('close', () => resolve());
    });
    // The hub notices the abort asynchronously (seconds, on a loaded CI machine).
    for (let i = 0; i < 500 && JSON.stringify(snapshot(th.data)) !== JSON.stringify(before); i++) await new Promise((r) => setTimeout(r, 20));
    expect(snapshot(th.data)).toEqual(before);
    // Counted as abandoned by the client (499), never as a success.
    for (let i = 0; i < 500 && puts('499') === aborted; i++) await new Promise((r) => setTimeout(r, 20));
    expect([puts('200') - ok, puts('499') - aborted]).toEqual([0, 1]);
  });

  test('per-object errors: 404 missing, 422 invalid oid or size, 422 over the size limit', async () => {
    const missing = sha(randomBytes(8));
    const objs = await batch('download', [{ oid: missing, size: 8 }, { oid: 'ZZ', size: 1 }, { oid: missing, size: -1 }, { oid: '../../../etc/passwd', size: 1 }], th.secrets.site);
    expect(objs.map((o) => o.error?.code)).toEqual([404, 422, 422, 422]);
    const big = await batch('upload', [{ oid: missing, size: 9 << 20 }], th.secrets.publisher);
    expect(big[0]!.error?.code).toBe(422);
    expect(big[0]!.actions).toBeUndefined();
  });

  test('action tokens are scoped to one object and one operation', async () => {
    const a = await upload(randomBytes(1000));
    const b = await upload(randomBytes(1000));
    const [d] = await batch('download', [{ oid: a, size: 1000 }], th.secrets.site);
    const header = d!.actions!.download!.header!;
    const other = await fetch(`${th.url}/registry.git/info/lfs/objects/${b}`, { headers: header });
    expect(other.status).toBe(401);
    await other.arrayBuffer();
    const put = await fetch(`${th.url}/registry.git/info/lfs/objects/${a}`, { method: 'PUT', headers: header, body: randomBytes(10) });
    expect(put.status).toBe(401);
    await put.arrayBuffer();
    const forged = await fetch(`${th.url}/registry.git/info/lfs/objects/${a}`, { headers: { Authorization: `${header.Authorization!.slice(0, -4)}AAAA` } });
    expect(forged.status).toBe(401);
    await forged.arrayBuffer();
  });

  test('roles: a site may not upload; missing credentials get 401 with Basic challenges', async () => {
    const bytes = randomBytes(10);
    const siteUp = await fetch(`${th.url}/registry.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { ...th.auth(th.secrets.site), 'Content-Type': LFS },
      body: JSON.stringify({ operation: 'upload', objects: [{ oid: sha(bytes), size: 10 }] }),
    });
    expect(siteUp.status).toBe(403);
    expect(siteUp.headers.get('content-type')).toMatch(/^application\/vnd\.git-lfs\+json/);
    await siteUp.arrayBuffer();
    const sitePut = await fetch(`${th.url}/registry.git/info/lfs/objects/${sha(bytes)}`, { method: 'PUT', headers: th.auth(th.secrets.site), body: bytes });
    expect(sitePut.status).toBe(403);
    await sitePut.arrayBuffer();

    const anon = await fetch(`${th.url}/registry.git/info/lfs/objects/batch`, { method: 'POST', headers: { 'Content-Type': LFS }, body: '{}' });
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Basic realm="modelsync"');
    expect(anon.headers.get('lfs-authenticate')).toBe('Basic realm="modelsync"');
    await anon.arrayBuffer();
  });

  describe('hostile requests get 4xx and change nothing', () => {
    let before: string[];
    let oid: string;
    beforeAll(async () => {
      oid = await upload(randomBytes(5000));
      before = snapshot(th.data);
    });

    const check = (res: RawResponse, allowed: number[]): void => {
      expect(allowed, `status ${res.status}: ${res.body.toString().slice(0, 200)}`).toContain(res.status);
    };

    test('path traversal in repository names', async () => {
      const admin = { Authorization: `Bearer ${th.secrets.admin}` };
      for (const path of [
        '/../../etc.git/info/refs?service=git-receive-pack',
        '/x/../evil.git/info/refs?service=git-receive-pack',
        '//evil.git/info/refs?service=git-receive-pack',
        '/..%2F..%2Fetc.git/info/refs?service=git-receive-pack',
        '/%2e%2e.git/info/refs?service=git-receive-pack',
        '/.git/info/refs?service=git-receive-pack',
        '/.hidden.git/info/refs?service=git-receive-pack',
        '/a%00b.git/info/refs?service=git-receive-pack',
        '/x.git.git/info/refs?service=git-receive-pack',
        '/a/b.git/info/refs?service=git-receive-pack',
      ]) {
        const r = await raw(th.url, { path, headers: admin });
        check(r, [400, 404]);
      }
      const r = await raw(th.url, {
        method: 'POST',
        path: '/..%2Fevil.git/info/lfs/objects/batch',
        headers: { ...admin, 'Content-Type': LFS },
        body: JSON.stringify({ operation: 'upload', objects: [{ oid, size: 5000 }] }),
      });
      check(r, [400]);
      expect(r.headers['content-type']).toMatch(/^application\/vnd\.git-lfs\+json/);
      expect(snapshot(th.data)).toEqual(before);
    });

    test('path traversal and garbage in oids', async () => {
      const admin = { Authorization: `Bearer ${th.secrets.admin}` };
      for (const path of [
        '/registry.git/info/lfs/objects/../../config',
        '/registry.git/info/lfs/objects/..%2F..%2Fconfig',
        `/registry.git/info/lfs/objects/${oid.toUpperCase()}`,
        `/registry.git/info/lfs/objects/${oid.slice(0, 63)}`,
        `/registry.git/info/lfs/objects/${oid}/../../../HEAD`,
      ]) {
        check(await raw(th.url, { path, headers: admin }), [400, 404, 422]);
        check(await raw(th.url, { method: 'PUT', path, headers: admin, body: 'x' }), [400, 404, 405, 422]);
      }
      expect(snapshot(th.data)).toEqual(before);
    });

    test('oversized bodies', async () => {
      const pub = { Authorization: `Bearer ${th.secrets.publisher}` };
      const bigBatch = JSON.stringify({ operation: 'upload', objects: Array.from({ length: 14_000 }, () => ({ oid: sha(randomBytes(4)), size: 1 })) });
      expect(bigBatch.length).toBeGreaterThan(1 << 20);
      check(await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': LFS }, body: bigBatch }), [413]);
      // Without a Content-Length the hub counts while reading, and stops.
      check(await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': LFS, 'Transfer-Encoding': 'chunked' }, body: bigBatch }), [413]);
      const bigReport = JSON.stringify({ pad: 'x'.repeat(300 << 10) });
      check(await raw(th.url, { method: 'POST', path: '/api/v1/sites/beta/status', headers: { ...pub, 'Content-Type': 'application/json' }, body: bigReport }), [413]);
      // An object bigger than the hub accepts (8 MiB in this hub), declared up front.
      const huge = sha(randomBytes(4));
      check(await raw(th.url, { method: 'PUT', path: `/registry.git/info/lfs/objects/${huge}`, headers: { ...pub, 'Content-Length': 9 << 20 } }), [413]);
      expect(snapshot(th.data)).toEqual(before);
    });

    test('malformed JSON and wrong content types', async () => {
      const pub = { Authorization: `Bearer ${th.secrets.publisher}` };
      const bad = await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': LFS }, body: '{"operation": "upload", "objects": [' });
      check(bad, [400]);
      expect(bad.headers['content-type']).toMatch(/^application\/vnd\.git-lfs\+json/);
      expect(JSON.parse(bad.body.toString()).message).toContain('not valid JSON');
      check(await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': LFS }, body: '{"operation": "delete", "objects": []}' }), [422]);
      check(await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': LFS }, body: '{"operation": "upload", "objects": [], "hash_algo": "md5"}' }), [409]);
      const noBasic = await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': LFS }, body: '{"operation": "upload", "objects": [], "transfers": ["tus"]}' });
      check(noBasic, [422]);
      expect(JSON.parse(noBasic.body.toString()).code).toBe('UnsupportedTransfer');
      check(await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: { ...pub, 'Content-Type': 'text/plain' }, body: '{"operation": "upload", "objects": []}' }), [415]);
      check(await raw(th.url, { method: 'POST', path: '/newrepo.git/info/lfs/objects/batch', headers: pub, body: '{"operation": "upload", "objects": []}' }), [415]);
      check(await raw(th.url, { method: 'POST', path: `/registry.git/info/lfs/objects/${oid}/verify`, headers: { ...pub, 'Content-Type': 'text/plain' }, body: '{}' }), [415]);
      check(await raw(th.url, { method: 'POST', path: `/registry.git/info/lfs/objects/${oid}/verify`, headers: { ...pub, 'Content-Type': LFS }, body: '[1,2' }), [400]);
      check(await raw(th.url, { method: 'POST', path: '/api/v1/sites/beta/status', headers: { ...pub, 'Content-Type': 'application/json' }, body: '{"ok": tru' }), [400]);
      check(await raw(th.url, { method: 'POST', path: '/api/v1/sites/beta/status', headers: { ...pub, 'Content-Type': 'application/json' }, body: '[1, 2]' }), [422]);
      check(await raw(th.url, { method: 'POST', path: '/api/v1/sites/beta/status', headers: { ...pub, 'Content-Type': 'text/plain' }, body: '{}' }), [415]);
      check(await raw(th.url, { method: 'POST', path: '/api/v1/sites/..%2F..%2Fetc/status', headers: { ...pub, 'Content-Type': 'application/json' }, body: '{}' }), [400]);
      check(await raw(th.url, { method: 'GET', path: '/registry.git/info/lfs/objects/batch', headers: pub }), [405]);
      check(await raw(th.url, { method: 'DELETE', path: `/registry.git/info/lfs/objects/${oid}`, headers: pub }), [405]);
      check(await raw(th.url, { method: 'GET', path: '/registry.git/info/refs', headers: pub }), [403]);
      expect(snapshot(th.data)).toEqual(before);
    });
  });
});
