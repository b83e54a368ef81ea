/**
 * A bare HTTP/1.1 GET for large download bodies.
 *
 * Why not node:http here: profiling a 256 MiB download (docs/lfs.md,
 * "Performance notes") showed node's client moving the body in ~64 KiB
 * chunks, each a fresh Buffer through the parser, a Readable, our Transform
 * and a WriteStream whose writes go round the thread pool: a third of the
 * time the main thread sat idle waiting for them, a tenth went to GC, and
 * the freed chunks pushed RSS up by ~40 MiB. Here the socket reads into one
 * reused buffer (`onread`, up to 1 MiB per read), and the caller hashes and
 * writes each slice synchronously before the buffer is reused: no per-chunk
 * allocation, no stream machinery, flat memory.
 *
 * Scope is deliberately small: one GET per connection (`Connection: close`,
 * so no keep-alive state to get wrong), status line + headers parsed here,
 * bodies framed by Content-Length, chunked encoding, or the connection's end.
 * The caller uses it only for bodies of at least a MiB; batch calls and
 * small objects keep node:http and its keep-alive pool.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { NetworkError } from '../errors.ts';
import { httpUrl, protocolError, wrapNetworkError } from './http.ts';
import { describeUrl } from './scrub.ts';

const READ_BUFFER = 1 << 20;
/** Status lines and headers together, 1xx answers included: a server cannot make us buffer or parse more. */
const MAX_HEAD_BYTES = 64 * 1024;
/**
 * The idle timeout alone never fires on a server that trickles a byte at a
 * time. So the head must arrive whole within twice the idle timeout (as batch
 * answers must, batch.ts), and the body must bring at least this many bytes
 * in every idle-timeout window it is not held back by our own bandwidth cap:
 * far below any real link (1 KiB per 30 s by default), far above a slowloris.
 */
export const MIN_BODY_BYTES_PER_WINDOW = 1024;

export interface WireOptions {
  headers: Record<string, string>;
  userAgent: string;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Called with each body slice; the slice is only valid during the call.
 * Return false to stop reading (the connection is closed), or a promise to
 * hold further reads until it settles (the bandwidth cap).
 */
export type BodySink = (chunk: Buffer) => boolean | void | Promise<void>;

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

export class WireResponse {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  /** Time from connect() to the TCP (or TLS) connection being up: about one round trip. */
  connectMs = 0;
  /** Time from sending the request to its status line: a round trip plus the server's think time (seen through a proxy too). */
  firstByteMs = 0;
  private sink: BodySink | undefined;
  private pending: Buffer[] = [];
  private framing: Framing = { kind: 'close' };
  private chunk = { left: 0, state: 'size' as 'size' | 'data' | 'data-crlf' | 'trailer' | 'done', line: '', trailerBytes: 0 };
  private settle: { resolve(): void; reject(e: unknown): void } | undefined;
  private ended = false;
  private hold: Promise<void> | undefined;
  private failure: unknown;
  /** Body bytes, and whether our cap held reads, since the speed floor last looked. */
  private window = { bytes: 0, held: false };
  private floor: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly where: string,
    private readonly timeoutMs = 30_000,
  ) {}

  /** Start the body's speed floor (see MIN_BODY_BYTES_PER_WINDOW); it stops when the socket closes. */
  private watchSpeed(): void {
    if (this.floor !== undefined) return;
    this.floor = setInterval(() => {
      const w = this.window;
      this.window = { bytes: 0, held: this.hold !== undefined };
      if (w.held || w.bytes >= MIN_BODY_BYTES_PER_WINDOW || this.settle === undefined) return;
      this.fail(tooSlow(this.where, this.timeoutMs, w.bytes));
    }, this.timeoutMs);
    this.floor.unref();
    this.socket.once('close', () => clearInterval(this.floor));
  }

  /** Stream the body into `sink`; resolves at its end, rejects when the connection fails or ends early. */
  pipe(sink: BodySink): Promise<void> {
    this.sink = sink;
    return new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
      const early = this.pending;
      this.pending = [];
      for (const b of early) {
        if (this.settle === undefined) return;
        this.feed(b);
      }
      if (this.failure !== undefined) this.fail(this.failure);
      else if (this.ended) this.finishOnEnd();
      else {
        this.watchSpeed();
        this.socket.resume();
      }
    });
  }

  /** The body as a Readable of copies: for error messages and discarded bodies (small, rare). */
  toReadable(): Readable {
    const out = new Readable({ read: () => {} });
    out.on('close', () => this.destroy());
    this.pipe((b) => void out.push(Buffer.from(b))).then(
      () => out.push(null),
      (e: unknown) => out.destroy(e as Error),
    );
    return out;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Body bytes from the socket (never more than this response's framing allows). */
  feed(data: Buffer): void {
    if (!this.sink) {
      this.pending.push(Buffer.from(data));
      this.socket.pause();
      return;
    }
    this.window.bytes += data.length;
    const f = this.framing;
    if (f.kind === 'close') return this.deliver(data);
    if (f.kind === 'length') {
      const n = Math.min(f.left, data.length);
      f.left -= n;
      if (n > 0 && !this.deliverPart(data.subarray(0, n))) return;
      if (f.left === 0) this.done();
      return;
    }
    this.feedChunked(data);
  }

  private deliver(b: Buffer): void {
    this.deliverPart(b);
  }

  private deliverPart(b: Buffer): boolean {
    let more: boolean | void | Promise<void>;
    try {
      more = this.sink!(b);
    } catch (e) {
      this.fail(e);
      return false;
    }
    if (more === false) {
      this.done();
      return false;
    }
    if (more instanceof Promise) {
      this.window.held = true;
      this.socket.pause();
      // The body may end in this very slice: its end waits for the hold too (the cap's last debt).
      this.hold = more.then(
        () => {
          this.hold = undefined;
          if (this.settle !== undefined) this.socket.resume();
        },
        (e: unknown) => {
          this.hold = undefined;
          this.fail(e);
        },
      );
    }
    return true;
  }

  private feedChunked(data: Buffer): void {
    const c = this.chunk;
    let i = 0;
    while (i < data.length && this.settle !== undefined) {
      if (c.state === 'data') {
        const n = Math.min(c.left, data.length - i);
        const slice = data.subarray(i, i + n);
        i += n;
        c.left -= n;
        if (!this.deliverPart(slice)) return;
        if (c.left === 0) c.state = 'data-crlf';
        continue;
      }
      // Size lines, the CRLF after data and the trailer are short: read them byte by byte.
      const ch = data[i++]!;
      // Trailer fields are skipped, but within the head's cap: an endless trailer would hold the download forever.
      if (c.state === 'trailer' && ++c.trailerBytes > MAX_HEAD_BYTES) return this.fail(protocolError(`${this.where}: chunked trailer larger than ${MAX_HEAD_BYTES} bytes`));
      if (ch !== 0x0a) {
        if (c.line.length > 1024) return this.fail(protocolError(`${this.where}: malformed chunked body (line too long)`));
        c.line += String.fromCharCode(ch);
        continue;
      }
      const line = c.line.replace(/\r$/, '');
      c.line = '';
      if (c.state === 'data-crlf') {
        if (line !== '') return this.fail(protocolError(`${this.where}: malformed chunked body (no CRLF after a chunk)`));
        c.state = 'size';
      } else if (c.state === 'size') {
        const m = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line);
        if (!m) return this.fail(protocolError(`${this.where}: malformed chunk size ${JSON.stringify(line.slice(0, 40))}`));
        c.left = parseInt(m[1]!, 16);
        c.state = c.left === 0 ? 'trailer' : 'data';
      } else if (c.state === 'trailer' && line === '') {
        return this.done();
      }
    }
  }

  private done(): void {
    clearInterval(this.floor);
    this.socket.destroy();
    const s = this.settle;
    this.settle = undefined;
    if (this.hold) void this.hold.then(() => (this.failure === undefined ? s?.resolve() : s?.reject(this.failure)));
    else s?.resolve();
  }

  fail(e: unknown): void {
    this.failure ??= e;
    clearInterval(this.floor);
    this.socket.destroy();
    const s = this.settle;
    this.settle = undefined;
    s?.reject(e);
  }

  /** The connection ended: the end of a close-delimited body, otherwise a body cut short. */
  onEnd(): void {
    this.ended = true;
    if (this.sink) this.finishOnEnd();
  }

  private finishOnEnd(): void {
    if (this.settle === undefined) return;
    if (this.framing.kind === 'close') this.done();
    else this.fail(new NetworkError(`GET ${this.where} failed: connection closed before the end of the body`, { url: this.where, errno: 'ECONNRESET' }));
  }

  /** Set from the parsed head. */
  setFraming(f: Framing): void {
    this.framing = f;
  }
}

/** The error for a body under the speed floor (MIN_BODY_BYTES_PER_WINDOW per `timeoutMs`). */
export function tooSlow(where: string, timeoutMs: number, got: number): NetworkError {
  const s = Math.round(timeoutMs / 1000);
  return new NetworkError(`GET ${where}: body slower than ${MIN_BODY_BYTES_PER_WINDOW} bytes per ${s}s (${got} bytes in the last ${s}s)`, { url: where, timeout: true });
}

/**
 * Connect, send the GET and resolve once the status line and headers are in.
 * The body is then read with `res.pipe(sink)` (or `res.toReadable()`), or
 * dropped with `res.destroy()`.
 */
export function wireGet(href: string, opts: WireOptions): Promise<WireResponse> {
  const where = describeUrl(href);
  return new Promise<WireResponse>((resolve, reject) => {
    const u = httpUrl(href, where);
    if (u instanceof Error) {
      reject(u);
      return;
    }
    let head: string;
    try {
      head = requestHead(u, opts);
    } catch (e) {
      reject(protocolError(`cannot send GET ${where}: ${(e as Error).message}`, { url: where }));
      return;
    }
    const secure = u.protocol === 'https:';
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const port = Number(u.port || (secure ? 443 : 80));
    const started = performance.now();
    let sentAt = started;
    let res: WireResponse | undefined;
    let headBuf: Buffer | undefined;
    /** Head bytes consumed by 1xx answers before the current one. */
    let headUsed = 0;
    let settled = false;
    const onread = {
      buffer: Buffer.allocUnsafe(READ_BUFFER),
      callback: (n: number, buf: Buffer): boolean => {
        const data = buf.subarray(0, n);
        if (res!.statusCode !== 0) {
          res!.feed(data);
          return true;
        }
        headBuf = headBuf ? Buffer.concat([headBuf, data]) : Buffer.from(data);
        parseHead();
        return true;
      },
    };
    const socket: net.Socket = secure
      ? // `onread` is documented for tls.connect (without `socket`) but missing from @types/node 20.
        tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, onread, ALPNProtocols: ['http/1.1'] } as tls.ConnectionOptions)
      : net.connect({ host, port, onread });
    res = new WireResponse(socket, where, opts.timeoutMs);
    const fail = (e: unknown): void => {
      const err = wrapNetworkError(e, 'GET', where);
      if (!settled) {
        settled = true;
        socket.destroy();
        reject(err);
      } else res!.fail(err);
    };
    const onAbort = (): void => {
      const reason = opts.signal!.reason as unknown;
      if (!settled) {
        settled = true;
        socket.destroy();
        reject(reason);
      } else res!.fail(reason);
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => opts.signal?.removeEventListener('abort', onAbort));
    socket.setTimeout(opts.timeoutMs, () => fail(new NetworkError(`GET ${where}: no data for ${Math.round(opts.timeoutMs / 1000)}s`, { url: where, timeout: true })));
    socket.on('error', fail);
    // With `onread` the socket's Readable side never flows, so 'end' may not fire: 'close' is the sure sign.
    const onGone = (): void => {
      if (!settled) fail(new NetworkError(`GET ${where} failed: connection closed before a response`, { url: where, errno: 'ECONNRESET' }));
      else res!.onEnd();
    };
    socket.on('end', onGone);
    socket.on('close', onGone);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      res!.connectMs = performance.now() - started;
      sentAt = performance.now();
      socket.write(head);
    });
    const headDeadline = setTimeout(() => {
      if (!settled) fail(new NetworkError(`GET ${where}: no complete response head within ${Math.round((2 * opts.timeoutMs) / 1000)}s`, { url: where, timeout: true }));
    }, 2 * opts.timeoutMs);
    headDeadline.unref();
    socket.once('close', () => clearTimeout(headDeadline));

    function parseHead(): void {
      for (;;) {
        const end = headBuf!.indexOf('\r\n\r\n');
        // Counted whether or not the head's end is in: one big read must not slip past the cap.
        if (headUsed + (end < 0 ? headBuf!.length : end + 4) > MAX_HEAD_BYTES) {
          return fail(protocolError(`${where}: response headers larger than ${MAX_HEAD_BYTES} bytes`, { url: where }));
        }
        if (end < 0) return;
        const lines = headBuf!.subarray(0, end).toString('latin1').split('\r\n');
        const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]!);
        if (!m) return fail(protocolError(`${where}: not an HTTP/1.1 response: ${JSON.stringify(lines[0]!.slice(0, 60))}`, { url: where }));
        const status = Number(m[1]);
        const rest = headBuf!.subarray(end + 4);
        if (status >= 100 && status < 200) {
          // 100 Continue and friends: the real answer follows (within the same cap).
          headUsed += end + 4;
          headBuf = Buffer.from(rest);
          continue;
        }
        const headers: IncomingHttpHeaders = {};
        for (const line of lines.slice(1)) {
          const i = line.indexOf(':');
          if (i <= 0) return fail(protocolError(`${where}: malformed header line ${JSON.stringify(line.slice(0, 60))}`, { url: where }));
          const k = line.slice(0, i).trim().toLowerCase();
          const v = line.slice(i + 1).trim();
          const prev = headers[k];
          headers[k] = prev === undefined ? v : `${String(prev)}, ${v}`;
        }
        const te = String(headers['transfer-encoding'] ?? '').toLowerCase();
        const cl = headers['content-length'];
        let framing: Framing = { kind: 'close' };
        if (te.includes('chunked')) framing = { kind: 'chunked' };
        else if (cl !== undefined) {
          if (!/^\d+$/.test(String(cl))) return fail(protocolError(`${where}: invalid Content-Length ${JSON.stringify(String(cl).slice(0, 40))}`, { url: where }));
          framing = { kind: 'length', left: Number(cl) };
        }
        if (status === 204 || status === 304) framing = { kind: 'length', left: 0 };
        res!.statusCode = status;
        res!.firstByteMs = performance.now() - sentAt;
        res!.headers = headers;
        res!.setFraming(framing);
        headBuf = undefined;
        settled = true;
        clearTimeout(headDeadline);
        // Nothing reads until the caller chooses what to do with the body.
        socket.pause();
        resolve(res!);
        if (rest.length > 0) res!.feed(rest);
        return;
      }
    }
  });
}

function requestHead(u: URL, opts: WireOptions): string {
  const headers: Record<string, string> = { 'user-agent': opts.userAgent, ...opts.headers };
  const lines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `host: ${u.host}`];
  for (const [k, v] of Object.entries(headers)) {
    const key = k.toLowerCase();
    if (key === 'host' || key === 'connection' || key === 'content-length' || key === 'transfer-encoding') continue;
    validateHeaderName(k);
    validateHeaderValue(k, v);
    lines.push(`${k}: ${v}`);
  }
  lines.push('connection: close', '', '');
  return lines.join('\r\n');
}
