/**
 * The bare GET of large bodies (src/lfs/wire.ts) against real servers on
 * 127.0.0.1 that frame bodies each way HTTP/1.1 allows, cut them short, or
 * stall; and the automatic parallel-range rule (src/lfs/ranges.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { rangeStreamsFrom, shouldSplit } from '../../src/lfs/ranges.ts';
import { wireGet } from '../../src/lfs/wire.ts';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A raw TCP server that answers every connection with `answer` (then ends, unless `hang`). */
async function rawServer(answer: (sock: net.Socket, request: string) => void): Promise<string> {
  const server = net.createServer((sock) => {
    let req = '';
    sock.on('data', (d) => {
      req += d.toString('latin1');
      if (req.includes('\r\n\r\n')) answer(sock, req);
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  const socks = new Set<net.Socket>();
  server.on('connection', (s) => (socks.add(s), s.on('close', () => socks.delete(s))));
  closers.push(() => socks.forEach((s) => s.destroy()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/obj`;
}

async function readAll(url: string, headers: Record<string, string> = {}, timeoutMs = 5_000): Promise<{ status: number; body: Buffer }> {
  const res = await wireGet(url, { headers, userAgent: 'test', timeoutMs });
  const parts: Buffer[] = [];
  await res.pipe((b) => void parts.push(Buffer.from(b)));
  return { status: res.statusCode, body: Buffer.concat(parts) };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('wire GET', () => {
  it('reads Content-Length, chunked and close-delimited bodies byte for byte, sending our headers once', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    let seen = '';
    const server = http.createServer((req, res) => {
      seen = JSON.stringify(req.headers);
      if (req.url === '/chunked') {
        res.writeHead(200, { 'transfer-encoding': 'chunked' });
        for (let i = 0; i < data.length; i += 100_003) res.write(data.subarray(i, i + 100_003));
        res.end();
      } else res.writeHead(200, { 'content-length': data.length }).end(data);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const a = await readAll(`${base}/len`, { authorization: 'Bearer x' });
    expect(sha(a.body)).toBe(sha(data));
    expect(JSON.parse(seen).authorization).toBe('Bearer x');
    const b = await readAll(`${base}/chunked`);
    expect(sha(b.body)).toBe(sha(data));

    const close = await rawServer((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n');
      sock.end(data);
    });
    const c = await readAll(close);
    expect(c.status).toBe(200);
    expect(sha(c.body)).toBe(sha(data));
  });

  it('a body cut short, a stalled body and a malformed answer are NetworkErrors or ProtocolErrors, not data', async () => {
    const short = await rawServer((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n');
      sock.end(Buffer.alloc(1000));
    });
    await expect(readAll(short)).rejects.toMatchObject({ code: 'NetworkError' });

    const stall = await rawServer((sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    await expect(readAll(stall, {}, 200)).rejects.toMatchObject({ code: 'NetworkError', data: { timeout: true } });

    const junk = await rawServer((sock) => sock.end('SSH-2.0-OpenSSH\r\n\r\n'));
    await expect(readAll(junk)).rejects.toMatchObject({ code: 'ProtocolError' });

    const badChunk = await rawServer((sock) => sock.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
    await expect(readAll(badChunk)).rejects.toMatchObject({ code: 'ProtocolError' });
  });

  it('refuses to send a header value that would inject another header', async () => {
    const url = await rawServer((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    await expect(wireGet(url, { headers: { 'x-a': 'v\r\nx-evil: 1' }, userAgent: 't', timeoutMs: 1000 })).rejects.toMatchObject({ code: 'ProtocolError' });
  });
});

describe('automatic parallel ranges', () => {
  const base = { elapsedMs: 1_500, received: 2 << 20, remaining: 1 << 30, capped: false };
  it('splits a long download on a far link, and not on a near one, a short one, under a cap or when off', () => {
    expect(shouldSplit('auto', { ...base, connectMs: 100 })).toBe(4);
    expect(shouldSplit('auto', { ...base, connectMs: 0.2 })).toBe(0);
    expect(shouldSplit('auto', { ...base, connectMs: 100, remaining: 8 << 20 })).toBe(0);
    expect(shouldSplit('auto', { ...base, connectMs: 100, received: 1 << 30 })).toBe(0);
    expect(shouldSplit('auto', { ...base, connectMs: 100, capped: true })).toBe(0);
    expect(shouldSplit('auto', { ...base, connectMs: 100, elapsedMs: 200 })).toBe(0);
    expect(shouldSplit('off', { ...base, connectMs: 100 })).toBe(0);
    expect(shouldSplit(6, { ...base, connectMs: 0.2, elapsedMs: 0 })).toBe(6);
  });

  it('reads the knob from the option, else MODELSYNC_LFS_RANGES, else auto', () => {
    expect(rangeStreamsFrom(undefined, undefined)).toBe('auto');
    expect(rangeStreamsFrom(undefined, ' OFF ')).toBe('off');
    expect(rangeStreamsFrom(undefined, '1')).toBe('off');
    expect(rangeStreamsFrom(undefined, '8')).toBe(8);
    expect(rangeStreamsFrom(undefined, '99')).toBe(16);
    expect(rangeStreamsFrom(undefined, 'lots')).toBe('auto');
    expect(rangeStreamsFrom(3, 'off')).toBe(3);
  });
});
