/**
 * The LFS client against a hostile or broken server: whatever the batch
 * answer and the hrefs say, nothing unverified is handed over, no credential
 * leaves for a place it should not, headers are not injected, and a pass
 * ends in bounded time with a typed error.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ChecksumError } from '../../src/errors.ts';
import { createFetcher, type HttpFetcher } from '../../src/lfs/index.ts';
import { blob, FAST_RETRY, oidOf, runFetch } from './helpers.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

interface Hostile {
  url: string;
  origin: string;
  requests: Array<{ method: string; path: string; headers: IncomingMessage['headers'] }>;
  close(): Promise<void>;
}

const open: Hostile[] = [];
const fetchers: HttpFetcher[] = [];
afterEach(async () => {
  for (const f of fetchers.splice(0)) f.close();
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function hostile(handler: Handler): Promise<Hostile> {
  const requests: Hostile['requests'] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ method: req.method ?? '', path: url.pathname + url.search, headers: req.headers });
    void Promise.resolve(handler(req, res, url)).catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const h: Hostile = {
    url: `${origin}/repo.git`,
    origin,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  open.push(h);
  return h;
}

function fetcher(remote: string, opts: Partial<Parameters<typeof createFetcher>[0]> = {}): HttpFetcher {
  const f = createFetcher({ remote, retry: FAST_RETRY, token: 'site-secret', ...opts }) as HttpFetcher;
  fetchers.push(f);
  return f;
}

function batchAnswer(res: ServerResponse, objects: unknown[]): void {
  const text = JSON.stringify({ transfer: 'basic', objects });
  res.writeHead(200, { 'content-type': 'application/vnd.git-lfs+json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

const isBatch = (url: URL): boolean => url.pathname.endsWith('/info/lfs/objects/batch');

describe('LFS client against a hostile server', () => {
  it('drops framing and connection headers an action tries to set, and still downloads', async () => {
    const data = blob(50_000);
    const obj = { oid: oidOf(data), size: data.length };
    const s = await hostile((req, res, url) => {
      if (isBatch(url)) {
        return batchAnswer(res, [
          {
            ...obj,
            actions: {
              download: {
                href: `${s.origin}/obj`,
                header: { Host: 'internal.example', 'Content-Length': '5', 'Transfer-Encoding': 'chunked', Connection: 'upgrade', Range: 'bytes=0-9', 'Accept-Encoding': 'gzip', 'X-Signature': 'ok' },
              },
            },
          },
        ]);
      }
      res.writeHead(200, { 'content-length': data.length });
      res.end(data);
    });
    const run = await runFetch(fetcher(s.url, { timeoutMs: 2000 }), [obj]);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(obj.oid);
    const get = s.requests.find((r) => r.path === '/obj')!;
    expect(get.headers.host).toBe(new URL(s.origin).host);
    expect(get.headers['content-length']).toBeUndefined();
    expect(get.headers['transfer-encoding']).toBeUndefined();
    expect(get.headers.range).toBeUndefined();
    expect(get.headers['accept-encoding']).toBeUndefined();
    expect(get.headers['x-signature']).toBe('ok');
  });

  it('refuses an action header node could not send as a protocol error, without retrying it', async () => {
    const data = blob(1000);
    const obj = { oid: oidOf(data), size: data.length };
    const s = await hostile((_req, res, url) => {
      if (isBatch(url)) return batchAnswer(res, [{ ...obj, actions: { download: { href: `${s.origin}/obj`, header: { 'X-Evil': 'caf\u0100' } } } }]);
      res.end(data);
    });
    const run = await runFetch(fetcher(s.url), [obj]);
    expect(run.result.failed.map((f) => f.error.code)).toEqual(['ProtocolError']);
    expect(s.requests.filter((r) => r.path === '/obj')).toEqual([]);
  });

  it('gives up on a batch answer trickled a byte at a time, long before it would end', async () => {
    const obj = { oid: oidOf('x'), size: 1 };
    const s = await hostile((_req, res) => {
      const body = Buffer.from(JSON.stringify({ objects: [{ ...obj, actions: { download: { href: 'http://127.0.0.1:1/x' } } }], pad: 'x'.repeat(400) }));
      res.writeHead(200, { 'content-type': 'application/vnd.git-lfs+json', 'content-length': body.length });
      let i = 0;
      const t = setInterval(() => {
        if (res.destroyed || i >= body.length) return clearInterval(t);
        res.write(body.subarray(i, ++i));
      }, 50);
      res.on('close', () => clearInterval(t));
    });
    const started = Date.now();
    const run = await runFetch(fetcher(s.url, { timeoutMs: 200, retry: { retries: 1, baseDelayMs: 5, maxDelayMs: 10 } }), [obj]);
    // Trickled whole, the answer would take 25 s; the deadline is 2 × the 200 ms idle timeout per try.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(run.result.failed).toHaveLength(1);
    expect(run.result.failed[0]!.error.message).toMatch(/no complete answer within/);
  });

  it('stops following a redirect loop, and never follows one to another scheme', async () => {
    const data = blob(1000);
    const loop = { oid: oidOf(data), size: data.length };
    const other = blob(1000);
    const toFile = { oid: oidOf(other), size: other.length };
    const s = await hostile((_req, res, url) => {
      if (isBatch(url)) {
        return batchAnswer(res, [
          { ...loop, actions: { download: { href: `${s.origin}/loop/0` } } },
          { ...toFile, actions: { download: { href: `${s.origin}/to-file` } } },
        ]);
      }
      const n = url.pathname.startsWith('/loop/') ? Number(url.pathname.slice(6)) : -1;
      res.writeHead(302, { location: n >= 0 ? `/loop/${n + 1}` : 'file:///etc/passwd' });
      res.end();
    });
    const run = await runFetch(fetcher(s.url), [loop, toFile]);
    const byOid = new Map(run.result.failed.map((f) => [f.obj.oid, f.error]));
    expect(byOid.get(loop.oid)?.message).toMatch(/too many redirects/);
    expect(byOid.get(toFile.oid)?.message).toMatch(/redirected to a file: URL/);
    // Not retried: a loop is not a network blip.
    expect(s.requests.filter((r) => r.path.startsWith('/loop/'))).toHaveLength(6);
  });

  it('does not keep reading an endless body it has no use for (a redirect’s)', async () => {
    const data = blob(1000);
    const obj = { oid: oidOf(data), size: data.length };
    let redirectClosed = false;
    const s = await hostile((_req, res, url) => {
      if (isBatch(url)) return batchAnswer(res, [{ ...obj, actions: { download: { href: `${s.origin}/start` } } }]);
      if (url.pathname === '/final') return void res.end(data);
      res.writeHead(302, { location: '/final' });
      const t = setInterval(() => res.write(Buffer.alloc(64 << 10)), 2);
      res.on('close', () => {
        clearInterval(t);
        redirectClosed = true;
      });
    });
    const run = await runFetch(fetcher(s.url), [obj]);
    expect(run.result.failed).toEqual([]);
    for (let i = 0; i < 100 && !redirectClosed; i++) await new Promise((r) => setTimeout(r, 20));
    expect(redirectClosed).toBe(true);
  });

  it('refuses hrefs that are not http(s)', async () => {
    const data = blob(10);
    const obj = { oid: oidOf(data), size: data.length };
    const s = await hostile((_req, res) => batchAnswer(res, [{ ...obj, actions: { download: { href: 'file:///etc/passwd' } } }]));
    const run = await runFetch(fetcher(s.url), [obj]);
    expect(run.result.failed[0]!.error.message).toMatch(/href scheme file: is not http/);
  });

  it('after a hop to another origin and back, sends our token to the endpoint again, and never to the other origin', async () => {
    const data = blob(2000);
    const obj = { oid: oidOf(data), size: data.length };
    const other = await hostile((_req, res) => {
      res.writeHead(307, { location: `${s.origin}/final` });
      res.end();
    });
    const s = await hostile((req, res, url) => {
      if (isBatch(url)) return batchAnswer(res, [{ ...obj, actions: { download: { href: `${s.origin}/start`, header: { Authorization: 'Bearer action-token' } } } }]);
      if (url.pathname === '/start') {
        res.writeHead(302, { location: `${other.origin}/hop` });
        return void res.end();
      }
      if (!req.headers.authorization) {
        res.writeHead(401);
        return void res.end();
      }
      res.end(data);
    });
    const run = await runFetch(fetcher(s.url), [obj]);
    expect(run.result.failed).toEqual([]);
    expect(other.requests[0]!.headers.authorization).toBeUndefined();
    const final = s.requests.find((r) => r.path === '/final')!;
    expect(final.headers.authorization).toMatch(/^Basic /);
    expect(Buffer.from(final.headers.authorization!.slice(6), 'base64').toString()).toContain('site-secret');
  });

  it('a Content-Range that lies about where the bytes start never ends up in a verified file', async () => {
    const data = blob(200_000);
    const obj = { oid: oidOf(data), size: data.length };
    let gets = 0;
    const s = await hostile((req, res, url) => {
      if (isBatch(url)) return batchAnswer(res, [{ ...obj, actions: { download: { href: `${s.origin}/obj` } } }]);
      gets++;
      if (gets === 1) {
        // Cut the first download half-way so the client resumes.
        res.writeHead(200, { 'content-length': data.length });
        res.write(data.subarray(0, 100_000), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      const from = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      if (from > 0) {
        // Claims the resumed range but sends bytes from 0.
        res.writeHead(206, { 'content-range': `bytes 0-${data.length - from - 1}/${data.length}`, 'content-length': data.length - from });
        return void res.end(data.subarray(0, data.length - from));
      }
      res.writeHead(200, { 'content-length': data.length });
      res.end(data);
    });
    const run = await runFetch(fetcher(s.url), [obj]);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(obj.oid);
  });

  it('more bytes than the pointer says is a checksum error, whatever the batch answer claimed; nothing is kept', async () => {
    const data = blob(10_000);
    const obj = { oid: oidOf(data), size: data.length };
    const longer = Buffer.concat([data, blob(5000)]);
    const s = await hostile((_req, res, url) => {
      if (isBatch(url)) return batchAnswer(res, [{ oid: obj.oid, size: longer.length, actions: { download: { href: `${s.origin}/obj` } } }]);
      res.writeHead(200); // no Content-Length: the client must count
      res.end(longer);
    });
    const run = await runFetch(fetcher(s.url), [obj]);
    expect(run.result.failed).toHaveLength(1);
    expect(run.result.failed[0]!.error).toBeInstanceOf(ChecksumError);
    expect(readdirSync(run.tmpDir)).toEqual([]);
  });

  it('a committed .lfsconfig naming another host that answers 401 says the token is not sent to other hosts', async () => {
    const obj = { oid: oidOf('x'), size: 1 };
    const foreign = await hostile((req, res) => {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="x"' });
      res.end(JSON.stringify({ message: 'credentials needed' }));
    });
    const registry = await hostile((_req, res) => void res.writeHead(500).end());
    const f = fetcher(registry.url, { lfsconfig: `[lfs]\n\turl = ${foreign.origin}/other.git/info/lfs\n` });
    const run = await runFetch(f, [obj]);
    const message = run.result.failed[0]!.error.message;
    expect(message).toMatch(/401/);
    expect(message).toContain(`the token is not sent to other hosts: the registry's .lfsconfig points LFS at ${foreign.origin}`);
    expect(message).not.toMatch(/no token configured/);
    expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
  });
});

describe('LFS client against a server that trickles a small object (node:http, under the wire threshold)', () => {
  /** Serves one object, its GET answered by `get` on the raw socket. */
  async function trickling(data: Buffer, get: (sock: import('node:net').Socket) => void): Promise<Hostile> {
    const obj = { oid: oidOf(data), size: data.length };
    return hostile((req, res, url) => {
      if (isBatch(url)) return batchAnswer(res, [{ ...obj, actions: { download: { href: `http://${req.headers.host}/obj` } } }]);
      const sock = res.socket!;
      let i = 0;
      const t = setInterval(() => (sock.destroyed ? clearInterval(t) : get.call(null, Object.assign(sock, { tick: i++ }))), 20);
      sock.once('close', () => clearInterval(t));
    });
  }

  it('gives up on a body that brings a byte every 20 ms, though the idle timeout never fires', async () => {
    const data = Buffer.alloc(100_000, 7);
    const s = await trickling(data, (sock) => {
      const n = (sock as unknown as { tick: number }).tick;
      sock.write(n === 0 ? `HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n` : data.subarray(n - 1, n));
    });
    const run = await runFetch(fetcher(s.url, { timeoutMs: 300, retry: { retries: 1, baseDelayMs: 5, maxDelayMs: 10 } }), [{ oid: oidOf(data), size: data.length }]);
    expect(run.result.failed).toHaveLength(1);
    expect(run.result.failed[0]!.error).toMatchObject({ code: 'NetworkError', message: expect.stringMatching(/slower than/) });
    expect(readdirSync(run.tmpDir).filter((f) => !f.endsWith('.part'))).toEqual([]);
  });

  it('gives up on a status line that brings a byte every 20 ms', async () => {
    const data = Buffer.alloc(1000, 7);
    const head = `HTTP/1.1 200 OK\r\nX-Slow: ${'a'.repeat(10_000)}`;
    const s = await trickling(data, (sock) => {
      const n = (sock as unknown as { tick: number }).tick;
      sock.write(head[n % head.length]!);
    });
    const run = await runFetch(fetcher(s.url, { timeoutMs: 300, retry: { retries: 1, baseDelayMs: 5, maxDelayMs: 10 } }), [{ oid: oidOf(data), size: data.length }]);
    expect(run.result.failed).toHaveLength(1);
    expect(run.result.failed[0]!.error).toMatchObject({ code: 'NetworkError', message: expect.stringMatching(/no complete response head/) });
  });
});
