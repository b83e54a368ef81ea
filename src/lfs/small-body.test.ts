import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AttemptContext } from './download.ts';
import { HttpTransport } from './http.ts';
import { fetchSmallObject } from './small-body.ts';

const text = Buffer.from(JSON.stringify({ chunks: Array.from({ length: 500 }, (_, i) => createHash('sha256').update(String(i)).digest('hex')) }));
const obj = { oid: createHash('sha256').update(text).digest('hex'), size: text.length };

// Each path is one server behaviour, honest or not.
const answers: Record<string, (res: ServerResponse, asked: IncomingHttpHeaders) => void> = {
  '/gzip': (res) => res.writeHead(200, { 'Content-Encoding': 'gzip' }).end(gzipSync(text)),
  '/plain': (res) => res.writeHead(200).end(text),
  '/bomb': (res) => res.writeHead(200, { 'Content-Encoding': 'gzip' }).end(gzipSync(Buffer.alloc(50 * text.length, 0x20))),
  '/other-bytes': (res) => res.writeHead(200, { 'Content-Encoding': 'gzip' }).end(gzipSync(Buffer.from(text.toString().replace('a', 'b')))),
  '/not-gzip': (res) => res.writeHead(200, { 'Content-Encoding': 'gzip' }).end(text),
  '/brotli': (res) => res.writeHead(200, { 'Content-Encoding': 'br' }).end(text),
  '/too-long': (res) => res.writeHead(200).end(Buffer.concat([text, text])),
  '/missing': (res) => res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such object'),
};

describe('fetchSmallObject', () => {
  let server: Server;
  let base: string;
  const seen: IncomingHttpHeaders[] = [];
  const transport = new HttpTransport({ timeoutMs: 5000 });

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.headers);
      answers[req.url ?? '']!(res, req.headers);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    transport.close();
    await new Promise<void>((r) => server.close(() => r()));
  });

  const get = (path: string) => {
    const ctx: AttemptContext = { transport, endpointOrigin: base, counters: { networkBytes: 0 } };
    return { ctx, got: fetchSmallObject(ctx, obj, { href: `${base}${path}`, header: {} }) };
  };

  it('asks for gzip, decodes it, and counts the compressed bytes as what crossed the network', async () => {
    const { ctx, got } = get('/gzip');
    expect((await got).equals(text)).toBe(true);
    expect(seen.at(-1)!['accept-encoding']).toBe('gzip');
    expect(ctx.counters.networkBytes).toBe(gzipSync(text).length);
    expect(ctx.counters.networkBytes).toBeLessThan(text.length);
  });

  it('takes the plain bytes from a server that does not compress', async () => {
    const { ctx, got } = get('/plain');
    expect((await got).equals(text)).toBe(true);
    expect(ctx.counters.networkBytes).toBe(text.length);
  });

  it('refuses what is not the object: a gzip bomb, other bytes, a false encoding, an encoding not asked for, too many bytes, a 404', async () => {
    await expect(get('/bomb').got).rejects.toMatchObject({ code: 'ChecksumError', message: expect.stringMatching(/does not decode to \d+ bytes/) });
    await expect(get('/other-bytes').got).rejects.toMatchObject({ code: 'ChecksumError', message: expect.stringMatching(/hashes to/) });
    await expect(get('/not-gzip').got).rejects.toMatchObject({ code: 'ChecksumError' });
    await expect(get('/brotli').got).rejects.toMatchObject({ code: 'NetworkError', message: expect.stringMatching(/Content-Encoding br, which was not asked for/) });
    await expect(get('/too-long').got).rejects.toMatchObject({ code: 'ChecksumError', message: expect.stringMatching(/sends more than/) });
    await expect(get('/missing').got).rejects.toMatchObject({ message: expect.stringMatching(/404/) });
  });
});
