/**
 * One download attempt of one object into `<tmpDir>/<oid>.part`, verified
 * while it streams:
 *
 *   - bytes already in the .part are hashed first, then only the rest is
 *     asked for with `Range: bytes=<n>-`; a 206 must carry a Content-Range
 *     that covers it to the end (one starting earlier is read past), a 200
 *     means the server ignored the range and we start over from zero;
 *   - each body slice is hashed, counted, written at its offset with a
 *     synchronous write (body.ts) and paced by the bandwidth cap, which holds
 *     further socket reads: memory stays flat whatever the size;
 *   - a large object on a far link may be split into parallel range
 *     requests (ranges.ts, segments.ts); the .part then carries a trailer
 *     saying which bytes are real, and is still verified whole;
 *   - more bytes than declared, a wrong total, or a digest that is not the
 *     oid is a ChecksumError and the .part is removed;
 *   - a body that ends early is a retryable NetworkError and the .part is kept
 *     for the next attempt to resume.
 *
 * Retrying, batching and concurrency live in http-fetcher.ts.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ChecksumError, NetworkError, StoreError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { bodyError, DiskWriteError, openBody, type BodyResponse, WIRE_MIN_BYTES, writeAt } from './body.ts';
import { EarlyWriteback } from '../util/writeback.ts';
import { type AuthScope, hrefHeaders, isRedirect, redirectHop } from './href.ts';
import { discardBody, errorBodyMessage, type HttpTransport, statusError } from './http.ts';
import { cutSegments, readTrailer, type RangeStreams, type Segment, shouldSplit, TRAILER_BYTES } from './ranges.ts';
import { describeUrl } from './scrub.ts';
import { finishSegments, type SegmentRun, startSegments } from './segments.ts';
import type { TokenBucket } from './throttle.ts';
import type { FetchProgress, LfsObject } from './types.ts';

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const READ_BYTES = 1 << 20;

export interface AttemptContext extends AuthScope {
  transport: HttpTransport;
  bucket?: TokenBucket;
  signal?: AbortSignal;
  onProgress?(p: FetchProgress): void;
  /** Bytes received from the network, failed attempts included. */
  counters: { networkBytes: number };
  /** Parallel range requests for large objects (ranges.ts); `refused` once a server answered a range with anything but the range. */
  ranges?: { mode: RangeStreams; refused: boolean };
  /** Bodies at least this long go over wire.ts (default 1 MiB); tests lower it to run the quirks through it. */
  wireMinBytes?: number;
  /** FetchOptions.durable: start writeback during whole downloads. */
  durable?: boolean;
  /** This object's bodies ended by stall.ts so far: past MAX_STALL_KILLS, a server that pauses its bodies is left to the idle timeout. */
  stalls?: { killed: number };
}

/** What is already on disk for an object: nothing usable, a verified file, or a prefix to resume from. */
export type PartState = { kind: 'complete' } | { kind: 'prefix'; bytes: number; hash: Hash; segments?: Segment[] };

/**
 * Look at `<oid>.part`: hash what is there (streaming), drop it when it is
 * longer than the object or complete but wrong. A .part left by parallel
 * ranges (a trailer past the object's end, ranges.ts) gives its contiguous
 * prefix; with `keepSegments` also the segments, else it is cut back to
 * that prefix, as everything that resumes sequentially expects.
 */
export async function inspectPart(obj: LfsObject, part: string, opts: { keepSegments?: boolean } = {}): Promise<PartState> {
  let have: number;
  try {
    have = (await fsp.stat(part)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'prefix', bytes: 0, hash: createHash('sha256') };
    throw new StoreError(`cannot read ${part}: ${(err as Error).message}`, { file: part }, err);
  }
  let segments: Segment[] | null = null;
  if (have > obj.size) {
    segments = have === obj.size + TRAILER_BYTES ? readTrailer(part, obj.size) : null;
    if (!segments) {
      await removePart(part);
      return { kind: 'prefix', bytes: 0, hash: createHash('sha256') };
    }
    have = segments[0]!.pos;
    if (!opts.keepSegments) {
      await fsp.truncate(part, have);
      segments = null;
    }
  }
  const hash = createHash('sha256');
  await hashFile(part, hash, 0, have);
  if (segments) return { kind: 'prefix', bytes: have, hash, segments };
  if (have === obj.size) {
    if (hash.copy().digest('hex') === obj.oid) return { kind: 'complete' };
    await removePart(part);
    return { kind: 'prefix', bytes: 0, hash: createHash('sha256') };
  }
  return { kind: 'prefix', bytes: have, hash };
}

/** Feed bytes `[start, end)` of `path` to `hash`, through one reused buffer. */
export async function hashFile(path: string, hash: Hash, start: number, end: number): Promise<void> {
  if (end <= start) return;
  const fh = await fsp.open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, end - start));
    for (let pos = start; pos < end; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
      if (bytesRead === 0) throw new StoreError(`${path} ends at byte ${pos}, expected ${end}`, { file: path });
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
}

export async function removePart(part: string): Promise<void> {
  await fsp.rm(part, { force: true }).catch(() => {});
}

/** True when `err` says a presigned/other-host href was refused (it may have expired): ask the batch API again. */
export function isHrefRefused(err: unknown): boolean {
  return (err as { data?: { hrefRefused?: unknown } } | undefined)?.data?.hrefRefused === true;
}

/** One attempt; resolves when `<oid>.part` holds the verified object. */
export async function downloadAttempt(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string): Promise<void> {
  const parallel = ctx.ranges !== undefined && ctx.ranges.mode !== 'off' && !ctx.ranges.refused;
  const state = await inspectPart(obj, part, { keepSegments: parallel });
  if (state.kind === 'complete') return;
  if (state.segments) return resumeSegments(ctx, obj, action, part, state.segments, state.hash);
  let have = state.bytes;
  let hash = state.hash;

  // Our own abort as well as the caller's: a failing helper range stops the first stream.
  const local = new AbortController();
  const onAbort = (): void => local.abort(ctx.signal!.reason);
  if (ctx.signal?.aborted) throw ctx.signal.reason;
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  const actx: AttemptContext = { ...ctx, signal: local.signal };
  let run: SegmentRun | undefined;
  let fd: number | undefined;
  try {
    const large = obj.size - have >= (ctx.wireMinBytes ?? WIRE_MIN_BYTES);
    const { res, url } = await openBody(actx, action, have > 0 ? `bytes=${have}-` : undefined, large);
    const where = describeUrl(url);
    const status = res.statusCode;
    // Bytes the server sends before the ones we asked for (a 206 that starts earlier, as some caches answer).
    let skip = 0;

    if (status === 200 && have > 0) {
      // The server ignored our Range: what it sends starts at byte 0.
      have = 0;
      hash = createHash('sha256');
    } else if (status === 206) {
      const range = parseContentRange(res.headers['content-range']);
      if (range && range.start < have && range.end === obj.size - 1 && (range.total === undefined || range.total === obj.size)) skip = have - range.start;
      else if (!range || range.start !== have || (range.total !== undefined && range.total !== obj.size) || range.end !== obj.size - 1) {
        res.destroy();
        if (range?.total !== undefined && range.total !== obj.size) {
          await removePart(part);
          throw new ChecksumError(`object ${obj.oid} at ${where} is ${range.total} bytes, expected ${obj.size}`, { oid: obj.oid, expectedSize: obj.size, actualSize: range.total });
        }
        await removePart(part);
        throw new NetworkError(`${where} answered Range bytes=${have}- with Content-Range ${String(res.headers['content-range'])}; restarting from zero`, { url: where });
      }
    } else if (status === 416 && have > 0) {
      discardBody(res.readable() as IncomingMessage);
      await removePart(part);
      throw new NetworkError(`${where} cannot resume at byte ${have} (416); restarting from zero`, { url: where });
    } else if (status !== 200) {
      throw await statusFailure(ctx, obj, action, res, url);
    }

    const remaining = obj.size - have + skip;
    const declared = res.headers['content-length'] === undefined ? undefined : Number(res.headers['content-length']);
    if (declared !== undefined && Number.isFinite(declared) && declared !== remaining) {
      res.destroy();
      await removePart(part);
      throw new ChecksumError(`${where} sends ${declared} bytes for ${obj.oid} from byte ${have - skip}, expected ${remaining} (object size ${obj.size})`, {
        oid: obj.oid,
        expectedSize: obj.size,
        actualSize: have - skip + declared,
      });
    }

    try {
      fd = openSync(part, have > 0 ? 'r+' : 'w');
      if (have > 0) ftruncateSync(fd, have);
    } catch (err) {
      res.destroy();
      throw bodyError(new DiskWriteError(err), part, obj.oid, where);
    }
    const file = fd;
    // The store fsyncs the object before it becomes visible: flushing as we go leaves that fsync little to do.
    const writeback = ctx.durable ? new EarlyWriteback(file) : undefined;
    // The first stream's segment: to the end of the object, unless a split hands its tail to helpers.
    const seg: Segment = { start: have, end: obj.size, pos: have };
    const mode = parallel ? ctx.ranges!.mode : 'off';
    let firstByteAt: number | undefined;
    const sink = (chunk: Buffer): boolean | Promise<void> | void => {
      if (skip > 0) {
        const drop = Math.min(skip, chunk.length);
        skip -= drop;
        ctx.counters.networkBytes += drop;
        chunk = chunk.subarray(drop);
        if (chunk.length === 0) return;
      }
      if (seg.pos + chunk.length > seg.end) {
        if (seg.end === obj.size) throw new ChecksumError(`server sent more than the ${obj.size} bytes of ${obj.oid}`, { oid: obj.oid, expectedSize: obj.size });
        chunk = chunk.subarray(0, seg.end - seg.pos);
      }
      writeAt(file, chunk, seg.pos);
      if (!run) writeback?.wrote(chunk.length);
      hash.update(chunk);
      seg.pos += chunk.length;
      ctx.counters.networkBytes += chunk.length;
      if (run) run.progress(chunk.length);
      else ctx.onProgress?.({ oid: obj.oid, bytes: seg.pos, size: obj.size });
      if (run === undefined && mode !== 'off') {
        const now = performance.now();
        firstByteAt ??= now;
        const n = shouldSplit(mode, { elapsedMs: now - firstByteAt, received: seg.pos - have, remaining: obj.size - seg.pos, connectMs: res.connectMs, capped: ctx.bucket !== undefined });
        if (n > 1) {
          const cut = cutSegments(seg.pos, obj.size, n);
          if (cut.length > 1) {
            seg.end = cut[0]!.end;
            run = startSegments(actx, obj, action, part, file, [seg, ...cut.slice(1)], local);
          }
        }
      }
      if (seg.pos >= seg.end && seg.end < obj.size) return false;
      if (ctx.bucket) return ctx.bucket.take(chunk.length, local.signal);
    };
    try {
      await res.pipe(sink);
    } catch (err) {
      await writeback?.settle();
      // With helpers running: stop them, record what is on disk, and report whichever failed first.
      const first = run ? await run.abort(err) : err;
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      if (err instanceof ChecksumError) {
        await removePart(part);
        throw err;
      }
      const out = first === err ? bodyError(err, part, obj.oid, where) : first;
      if (out instanceof NetworkError) out.message = `${out.message} after ${seg.pos - have} bytes from byte ${have} of ${obj.size}`;
      throw out;
    }
    // Before the fd is closed (or handed on to the helpers' finish): a datasync never outlives its fd.
    await writeback?.settle();
    if (run) {
      if (seg.pos < seg.end) {
        const e = new NetworkError(`download of ${obj.oid.slice(0, 12)} from ${where} ended at byte ${seg.pos}, before ${seg.end}`, { url: where, received: seg.pos });
        throw await run.abort(e);
      }
      await finishSegments(run, hash, seg.end);
      return;
    }
    if (seg.pos < obj.size) {
      throw new NetworkError(`download of ${obj.oid.slice(0, 12)} from ${where} ended after ${seg.pos} of ${obj.size} bytes`, { url: where, received: seg.pos });
    }
    closeSync(fd);
    fd = undefined;
    const digest = hash.digest('hex');
    if (digest !== obj.oid) {
      await removePart(part);
      throw new ChecksumError(`checksum mismatch for ${obj.oid}: downloaded bytes hash to ${digest}${state.bytes > 0 ? ` (resumed at byte ${state.bytes})` : ''}`, {
        oid: obj.oid,
        actual: digest,
        expectedSize: obj.size,
        actualSize: seg.pos,
      });
    }
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
    if (fd !== undefined && !run) closeQuietly(fd);
  }
}

/** A .part left by parallel ranges: fetch its holes, then verify the whole. */
async function resumeSegments(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string, segments: Segment[], hash: Hash): Promise<void> {
  const local = new AbortController();
  const onAbort = (): void => local.abort(ctx.signal!.reason);
  if (ctx.signal?.aborted) throw ctx.signal.reason;
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let fd: number;
    try {
      fd = openSync(part, 'r+');
    } catch (err) {
      throw new StoreError(`cannot open ${part}: ${(err as Error).message}`, { file: part }, err);
    }
    const run = startSegments({ ...ctx, signal: local.signal }, obj, action, part, fd, segments, local, false);
    await finishSegments(run, hash, segments[0]!.pos);
  } finally {
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

/** The typed error for a status that is neither the body nor a redirect. */
export async function statusFailure(ctx: AttemptContext, obj: LfsObject, action: LfsAction, res: BodyResponse, url: string): Promise<Error> {
  const status = res.statusCode;
  const msg = await errorBodyMessage(res.readable() as IncomingMessage);
  const err = statusError(status, `download of ${obj.oid.slice(0, 12)}`, describeUrl(url), msg, res.headers);
  // Another host's href, or one the server said expires: it may simply have expired (a long
  // queue, a slow link, a Retry-After wait). A new batch call gives a fresh one.
  if ((status === 401 || status === 403) && (new URL(url).origin !== ctx.endpointOrigin || action.expiresAt !== undefined)) err.data.hrefRefused = true;
  return err;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * GET the href with its own headers, following redirects. Our Authorization
 * goes only to the endpoint's own origin and only when the action did not
 * bring its own; a redirect to another origin drops the action's headers,
 * which may carry a credential (S3-style presigned URLs need none).
 */
export async function openHref(ctx: AttemptContext, action: LfsAction, range: string | undefined, extra?: Record<string, string>): Promise<{ res: IncomingMessage; url: string }> {
  let url = action.href;
  let headers: Record<string, string> = action.header;
  for (let hop = 0; ; hop++) {
    const send = { ...hrefHeaders(headers, url, ctx), ...extra };
    if (range !== undefined) send.range = range;
    const res = await ctx.transport.send(url, { headers: send, signal: ctx.signal, headDeadlineMs: 2 * ctx.transport.timeoutMs });
    const status = res.statusCode ?? 0;
    if (!isRedirect(status)) return { res, url };
    discardBody(res);
    ({ url, headers } = redirectHop(url, status, res.headers.location, hop, action.href, headers));
  }
}

/** `bytes <start>-<end>/<total|*>` */
export function parseContentRange(v: string | string[] | undefined): { start: number; end: number; total?: number } | null {
  const s = Array.isArray(v) ? v[0] : v;
  const m = s ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(s) : null;
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}
