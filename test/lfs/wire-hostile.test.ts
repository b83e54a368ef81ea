/**
 * The bare GET (src/lfs/wire.ts) against raw servers on 127.0.0.1 that try to
 * make it wait or buffer forever: headers past the cap arriving in one read,
 * an endless run of 1xx answers, a status line trickled a byte at a time, a
 * body trickled a byte at a time. Each must end in a typed error, not a hang.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { wireGet } from '../../src/lfs/wire.ts';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A raw TCP server that runs `answer` once a request has come in. */
async function rawServer(answer: (sock: net.Socket) => void): Promise<string> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => {});
    let req = '';
    let answered = false;
    sock.on('data', (d) => {
      req += d.toString('latin1');
      if (!answered && req.includes('\r\n\r\n')) {
        answered = true;
        answer(sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => server.close());
  closers.push(() => socks.forEach((s) => s.destroy()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/obj`;
}

/** Write `text` one byte every `ms` until the socket goes away. */
function trickle(sock: net.Socket, text: string, ms: number): void {
  let i = 0;
  const t = setInterval(() => {
    if (sock.destroyed) return clearInterval(t);
    sock.write(text[i++ % text.length]!);
  }, ms);
  sock.on('close', () => clearInterval(t));
  closers.push(() => clearInterval(t));
}

async function readAll(url: string, timeoutMs: number): Promise<number> {
  const res = await wireGet(url, { headers: {}, userAgent: 'test', timeoutMs });
  let n = 0;
  await res.pipe((b) => void (n += b.length));
  return n;
}

describe('wire GET against servers that never finish', () => {
  it('refuses headers past the cap even when their end arrives in the same read', async () => {
    const filler = (n: number) => Array.from({ length: n }, (_, i) => `x-pad-${i}: ${'a'.repeat(50)}\r\n`).join('');
    const url = await rawServer((sock) => {
      sock.write(`HTTP/1.1 200 OK\r\n${filler(1000)}`);
      // The rest (and the headers' end) comes later, so it lands in one read past the cap.
      setTimeout(() => !sock.destroyed && sock.end(`${filler(1000)}Content-Length: 2\r\n\r\nok`), 100);
    });
    await expect(readAll(url, 5_000)).rejects.toMatchObject({ code: 'ProtocolError', message: expect.stringMatching(/headers larger than/) });
  });

  it('gives up on an endless run of 100 Continue answers', async () => {
    const url = await rawServer((sock) => {
      const t = setInterval(() => (sock.destroyed ? clearInterval(t) : sock.write('HTTP/1.1 100 Continue\r\n\r\n'.repeat(50))), 5);
      sock.on('close', () => clearInterval(t));
      closers.push(() => clearInterval(t));
    });
    await expect(readAll(url, 5_000)).rejects.toMatchObject({ code: 'ProtocolError' });
  });

  it('gives up on a chunked body whose trailer never ends', async () => {
    const url = await rawServer((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n');
      const t = setInterval(() => (sock.destroyed ? clearInterval(t) : sock.write('X-T: 1\r\n'.repeat(100))), 5);
      sock.on('close', () => clearInterval(t));
      closers.push(() => clearInterval(t));
    });
    await expect(readAll(url, 5_000)).rejects.toMatchObject({ code: 'ProtocolError', message: expect.stringMatching(/trailer/) });
  });

  it('gives up on a status line trickled a byte at a time (the idle timeout alone never fires)', async () => {
    const url = await rawServer((sock) => trickle(sock, 'HTTP/1.1 200 OK\r\nX-Slow: ' + 'a'.repeat(60_000), 20));
    await expect(readAll(url, 300)).rejects.toMatchObject({ code: 'NetworkError', data: { timeout: true } });
  });

  it('gives up on a body trickled a byte at a time', async () => {
    const url = await rawServer((sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n');
      trickle(sock, 'b', 20);
    });
    await expect(readAll(url, 300)).rejects.toMatchObject({ code: 'NetworkError', data: { timeout: true }, message: expect.stringMatching(/slower than/) });
  });
});

async function body(url: string): Promise<Buffer> {
  const res = await wireGet(url, { headers: {}, userAgent: 'test', timeoutMs: 5_000 });
  const parts: Buffer[] = [];
  await res.pipe((b) => void parts.push(Buffer.from(b)));
  return Buffer.concat(parts);
}

describe('wire GET framing a hostile server chooses', () => {
  it('refuses two Content-Lengths that disagree, or one that is not a number', async () => {
    for (const head of ['Content-Length: 5\r\nContent-Length: 6', 'Content-Length: 5, 6', 'Content-Length: -1', 'Content-Length: 0x10']) {
      const url = await rawServer((sock) => sock.end(`HTTP/1.1 200 OK\r\n${head}\r\n\r\nhello!`));
      await expect(body(url)).rejects.toMatchObject({ code: 'ProtocolError', message: expect.stringMatching(/invalid Content-Length/) });
    }
  });

  it('never reads past Content-Length, and lets chunked framing override it, extensions and trailers skipped', async () => {
    const longer = await rawServer((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA-BYTES'));
    expect((await body(longer)).toString()).toBe('hello');
    const both = await rawServer((sock) => sock.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\nJUNK'));
    expect((await body(both)).toString()).toBe('hello world');
  });

  it('refuses a chunk size of more than 12 hex digits, garbage, or a chunk without its CRLF', async () => {
    for (const chunked of ['fffffffffffffffff\r\n', '5 \r\nhello\r\n', '-1\r\n', '5\r\nhelloX\r\n0\r\n\r\n', `${'1'.repeat(2000)}`]) {
      const url = await rawServer((sock) => sock.end(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`));
      await expect(body(url)).rejects.toMatchObject({ code: 'ProtocolError' });
    }
  });
});
