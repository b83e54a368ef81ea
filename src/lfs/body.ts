/**
 * Getting a download body onto disk: open the href (node:http for small
 * bodies and redirects' first hops, the bare wire.ts GET for large ones) and
 * feed each slice to a synchronous sink that hashes it and writes it at its
 * offset with `fs.writeSync`. Synchronous writes land in the page cache in a
 * few microseconds; doing them in line avoids a thread-pool round trip and a
 * retained Buffer per chunk, which is what made the old WriteStream pipeline
 * idle-bound and memory-hungry (docs/lfs.md, "Performance notes").
 */
import { writeSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { isDiskFull, StoreError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { hrefHeaders, isRedirect, redirectHop } from './href.ts';
import { discardBody, wrapNetworkError } from './http.ts';
import type { AttemptContext } from './download.ts';
import { describeUrl } from './scrub.ts';
import { watchStall } from './stall.ts';
import { type BodySink, MIN_BODY_BYTES_PER_WINDOW, tooSlow, wireGet, WireResponse } from './wire.ts';

/** Bodies at least this long go over wire.ts; smaller ones keep node:http's keep-alive connections. */
export const WIRE_MIN_BYTES = 1 << 20;

/** A response whose body is read through a sink, whichever client produced it. */
export interface BodyResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /**
   * The longer of connect time and request → status line: about one round
   * trip, also through a TCP proxy that answers the handshake itself.
   */
  connectMs?: number;
  /** Feed the body to `sink` until it ends or the sink returns false. */
  pipe(sink: BodySink): Promise<void>;
  /** The body as a stream (for error messages). */
  readable(): Readable;
  /** Close the connection; with `err`, a pipe under way rejects with it. */
  destroy(err?: Error): void;
}

/**
 * wire.ts's speed floor for a node:http body: fewer than
 * MIN_BODY_BYTES_PER_WINDOW bytes in an idle-timeout window (one our own cap
 * held back excepted) destroys `res` with a NetworkError, which its reader sees.
 */
export function speedFloor(res: IncomingMessage, where: string, timeoutMs: number): { got(n: number): void; held<T>(p: Promise<T>): Promise<T>; stop(): void } {
  let window = { bytes: 0, held: false };
  let holding = 0;
  const timer = setInterval(() => {
    const w = window;
    window = { bytes: 0, held: holding > 0 };
    if (!w.held && w.bytes < MIN_BODY_BYTES_PER_WINDOW) res.destroy(tooSlow(where, timeoutMs, w.bytes));
  }, timeoutMs);
  timer.unref();
  return {
    got: (n) => void (window.bytes += n),
    async held(p) {
      holding++;
      window.held = true;
      try {
        return await p;
      } finally {
        holding--;
      }
    },
    stop: () => clearInterval(timer),
  };
}

/** A node:http response as a BodyResponse, its body read under the speed floor. */
export function fromIncoming(res: IncomingMessage, where: string, timeoutMs: number): BodyResponse {
  return {
    statusCode: res.statusCode ?? 0,
    headers: res.headers,
    async pipe(sink) {
      const floor = speedFloor(res, where, timeoutMs);
      try {
        for await (const chunk of res) {
          floor.got((chunk as Buffer).length);
          let more = sink(chunk as Buffer);
          if (more instanceof Promise) more = await floor.held(more);
          if (more === false) {
            res.destroy();
            return;
          }
        }
      } finally {
        floor.stop();
      }
    },
    readable: () => res,
    destroy: (err) => res.destroy(err),
  };
}

function fromWire(res: WireResponse): BodyResponse {
  return {
    statusCode: res.statusCode,
    headers: res.headers,
    connectMs: Math.max(res.connectMs, res.firstByteMs),
    pipe: (sink) => res.pipe(sink),
    readable: () => res.toReadable(),
    destroy: (err) => (err ? res.fail(err) : res.destroy()),
  };
}

/** `res` with its body watched for a dead connection (stall.ts): `probe` asks the server on a new one. */
function watched(res: BodyResponse, where: string, probe: (signal: AbortSignal) => Promise<boolean>, stalls: { killed: number } | undefined): BodyResponse {
  return {
    ...res,
    async pipe(sink) {
      const watch = watchStall({ where, probe, stalls, onDead: (err) => res.destroy(err) });
      try {
        await res.pipe((chunk) => {
          watch.got(chunk.length);
          const more = sink(chunk);
          return more instanceof Promise ? watch.held(more) : more;
        });
      } finally {
        watch.stop();
      }
    },
  };
}

/** A HEAD of the href on a new connection: any answer below 500 means the server is reachable now. */
async function probeHref(ctx: AttemptContext, url: string, headers: Record<string, string>, signal: AbortSignal): Promise<boolean> {
  const { range: _range, ...rest } = headers;
  try {
    const res = await ctx.transport.send(url, { method: 'HEAD', headers: rest, signal: ctx.signal ? AbortSignal.any([ctx.signal, signal]) : signal, fresh: true });
    res.resume();
    return (res.statusCode ?? 0) > 0 && (res.statusCode ?? 0) < 500;
  } catch {
    return false;
  }
}

/**
 * GET an href as download.ts's openHref does (same header and redirect
 * rules), over wire.ts when `large` and node:http otherwise.
 */
export async function openBody(ctx: AttemptContext, action: LfsAction, range: string | undefined, large: boolean): Promise<{ res: BodyResponse; url: string }> {
  let url = action.href;
  let headers: Record<string, string> = action.header;
  for (let hop = 0; ; hop++) {
    const send = hrefHeaders(headers, url, ctx);
    if (range !== undefined) send.range = range;
    const res = large
      ? fromWire(await wireGet(url, { headers: send, userAgent: ctx.transport.userAgent, timeoutMs: ctx.transport.timeoutMs, signal: ctx.signal }))
      : fromIncoming(await ctx.transport.send(url, { headers: send, signal: ctx.signal, headDeadlineMs: 2 * ctx.transport.timeoutMs }), describeUrl(url), ctx.transport.timeoutMs);
    const status = res.statusCode;
    if (!isRedirect(status)) {
      const at = url;
      return { res: watched(res, describeUrl(url), (signal) => probeHref(ctx, at, send, signal), ctx.stalls), url };
    }
    // A node:http redirect body is read off so its keep-alive connection is reused; a wire one is just closed.
    if (large) res.destroy();
    else discardBody(res.readable() as IncomingMessage);
    ({ url, headers } = redirectHop(url, status, res.headers.location, hop, action.href, headers));
  }
}

/** A disk error met while writing a body: kept apart from network errors so the caller reports it as the store's. */
export class DiskWriteError extends Error {
  constructor(override readonly cause: unknown) {
    super((cause as Error).message);
  }
}

/** Write all of `b` at `pos` (a short write is retried, as the kernel may return one). */
export function writeAt(fd: number, b: Buffer, pos: number): void {
  let off = 0;
  try {
    while (off < b.length) off += writeSync(fd, b, off, b.length - off, pos + off);
  } catch (e) {
    throw new DiskWriteError(e);
  }
}

/** The typed error for a failed body transfer. */
export function bodyError(err: unknown, part: string, oid: string, where: string): unknown {
  if (err instanceof DiskWriteError) {
    const full = isDiskFull(err.cause);
    return new StoreError(`${full ? 'disk full' : 'cannot write'} while downloading ${oid} to ${part}: ${err.message}`, { file: part, oid, diskFull: full }, err.cause);
  }
  return wrapNetworkError(err, 'GET', where);
}
