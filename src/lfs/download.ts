/**
 * One download attempt of one object into `<tmpDir>/<oid>.part`, verified
 * while it streams:
 *
 *   - bytes already in the .part are hashed first, then only the rest is
 *     asked for with `Range: bytes=<n>-`; a 206 must carry a Content-Range
 *     that covers it to the end (one starting earlier is read past), a 200
 *     means the server ignored the range and we start over from zero;
 *   - the body is piped through a hashing, counting, throttling stage into
 *     the file with backpressure, so memory stays flat whatever the size;
 *   - more bytes than declared, a wrong total, or a digest that is not the
 *     oid is a ChecksumError and the .part is removed;
 *   - a body that ends early is a retryable NetworkError and the .part is kept
 *     for the next attempt to resume.
 *
 * Retrying, batching and concurrency live in http-fetcher.ts.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ChecksumError, isDiskFull, NetworkError, StoreError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { type AuthScope, hrefHeaders } from './href.ts';
import { discardBody, errorBodyMessage, type HttpTransport, protocolError, statusError, wrapNetworkError } from './http.ts';
import { describeUrl } from './scrub.ts';
import type { TokenBucket } from './throttle.ts';
import type { FetchProgress, LfsObject } from './types.ts';

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const MAX_REDIRECTS = 5;
const FILE_HWM = 1 << 20;

export interface AttemptContext extends AuthScope {
  transport: HttpTransport;
  bucket?: TokenBucket;
  signal?: AbortSignal;
  onProgress?(p: FetchProgress): void;
  /** Bytes received from the network, failed attempts included. */
  counters: { networkBytes: number };
}

/** What is already on disk for an object: nothing usable, a verified file, or a prefix to resume from. */
export type PartState = { kind: 'complete' } | { kind: 'prefix'; bytes: number; hash: Hash };

/**
 * Look at `<oid>.part`: hash what is there (streaming), drop it when it is
 * longer than the object or complete but wrong.
 */
export async function inspectPart(obj: LfsObject, part: string): Promise<PartState> {
  let have: number;
  try {
    have = (await fsp.stat(part)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'prefix', bytes: 0, hash: createHash('sha256') };
    throw new StoreError(`cannot read ${part}: ${(err as Error).message}`, { file: part }, err);
  }
  if (have > obj.size) {
    await removePart(part);
    return { kind: 'prefix', bytes: 0, hash: createHash('sha256') };
  }
  const hash = createHash('sha256');
  if (have > 0) {
    for await (const chunk of createReadStream(part, { start: 0, end: have - 1, highWaterMark: FILE_HWM })) hash.update(chunk as Buffer);
  }
  if (have === obj.size) {
    if (hash.copy().digest('hex') === obj.oid) return { kind: 'complete' };
    await removePart(part);
    return { kind: 'prefix', bytes: 0, hash: createHash('sha256') };
  }
  return { kind: 'prefix', bytes: have, hash };
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
  const state = await inspectPart(obj, part);
  if (state.kind === 'complete') return;
  let have = state.bytes;
  let hash = state.hash;

  const { res, url } = await openHref(ctx, action, have > 0 ? `bytes=${have}-` : undefined);
  const where = describeUrl(url);
  const status = res.statusCode ?? 0;
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
    discardBody(res);
    await removePart(part);
    throw new NetworkError(`${where} cannot resume at byte ${have} (416); restarting from zero`, { url: where });
  } else if (status !== 200) {
    const msg = await errorBodyMessage(res);
    const err = statusError(status, `download of ${obj.oid.slice(0, 12)}`, where, msg, res.headers);
    // Another host's href, or one the server said expires: it may simply have expired (a long
    // queue, a slow link, a Retry-After wait). A new batch call gives a fresh one.
    if ((status === 401 || status === 403) && (new URL(url).origin !== ctx.endpointOrigin || action.expiresAt !== undefined)) err.data.hrefRefused = true;
    throw err;
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

  const meter = new Meter(obj, have, hash, ctx, skip);
  let diskError: unknown;
  const file = createWriteStream(part, { flags: have > 0 ? 'a' : 'w', highWaterMark: FILE_HWM });
  file.on('error', (e) => (diskError ??= e));
  try {
    await pipeline(res, meter, file, { signal: ctx.signal });
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    if (err instanceof ChecksumError) {
      await removePart(part);
      throw err;
    }
    if (diskError !== undefined) {
      const full = isDiskFull(diskError);
      throw new StoreError(`${full ? 'disk full' : 'cannot write'} while downloading ${obj.oid} to ${part}: ${(diskError as Error).message}`, { file: part, oid: obj.oid, diskFull: full }, diskError);
    }
    const e = wrapNetworkError(err, 'GET', where);
    if (e instanceof NetworkError) e.message = `${e.message} after ${have + meter.received} of ${obj.size} bytes`;
    throw e;
  }
  const got = have + meter.received;
  if (got < obj.size) {
    throw new NetworkError(`download of ${obj.oid.slice(0, 12)} from ${where} ended after ${got} of ${obj.size} bytes`, { url: where, received: got });
  }
  const digest = hash.digest('hex');
  if (digest !== obj.oid) {
    await removePart(part);
    throw new ChecksumError(`checksum mismatch for ${obj.oid}: downloaded bytes hash to ${digest}${state.bytes > 0 ? ` (resumed at byte ${state.bytes})` : ''}`, {
      oid: obj.oid,
      actual: digest,
      expectedSize: obj.size,
      actualSize: got,
    });
  }
}

/** Hashes, counts, caps bandwidth and refuses bytes past the declared size. */
class Meter extends Transform {
  received = 0;

  constructor(
    private readonly obj: LfsObject,
    private readonly start: number,
    private readonly hash: Hash,
    private readonly ctx: AttemptContext,
    /** Leading bytes that we already have (the answer started before our range). */
    private skip = 0,
  ) {
    super({ highWaterMark: FILE_HWM });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.skip > 0) {
      const drop = Math.min(this.skip, chunk.length);
      this.skip -= drop;
      this.ctx.counters.networkBytes += drop;
      chunk = chunk.subarray(drop);
      if (chunk.length === 0) return cb();
    }
    if (this.start + this.received + chunk.length > this.obj.size) {
      cb(new ChecksumError(`server sent more than the ${this.obj.size} bytes of ${this.obj.oid}`, { oid: this.obj.oid, expectedSize: this.obj.size }));
      return;
    }
    this.received += chunk.length;
    this.ctx.counters.networkBytes += chunk.length;
    this.hash.update(chunk);
    this.ctx.onProgress?.({ oid: this.obj.oid, bytes: this.start + this.received, size: this.obj.size });
    // Holding the callback until the bucket allows it pauses the socket read: the cap acts on the wire.
    if (this.ctx.bucket) this.ctx.bucket.take(chunk.length, this.ctx.signal).then(() => cb(null, chunk), cb);
    else cb(null, chunk);
  }
}

/**
 * GET the href with its own headers, following redirects. Our Authorization
 * goes only to the endpoint's own origin and only when the action did not
 * bring its own; a redirect to another origin drops the action's headers,
 * which may carry a credential (S3-style presigned URLs need none).
 */
export async function openHref(ctx: AttemptContext, action: LfsAction, range: string | undefined): Promise<{ res: IncomingMessage; url: string }> {
  let url = action.href;
  let headers: Record<string, string> = action.header;
  for (let hop = 0; ; hop++) {
    const send = hrefHeaders(headers, url, ctx);
    if (range !== undefined) send.range = range;
    const res = await ctx.transport.send(url, { headers: send, signal: ctx.signal });
    const status = res.statusCode ?? 0;
    if (![301, 302, 303, 307, 308].includes(status)) return { res, url };
    discardBody(res);
    const location = res.headers.location;
    if (!location) throw protocolError(`${describeUrl(url)} redirected (${status}) without a Location`);
    if (hop >= MAX_REDIRECTS) throw protocolError(`too many redirects from ${describeUrl(action.href)}`);
    const next = new URL(location, url);
    if (next.protocol !== 'http:' && next.protocol !== 'https:') throw protocolError(`${describeUrl(url)} redirected to a ${next.protocol} URL`);
    if (next.origin !== new URL(url).origin) headers = {};
    url = next.toString();
  }
}

/** `bytes <start>-<end>/<total|*>` */
export function parseContentRange(v: string | string[] | undefined): { start: number; end: number; total?: number } | null {
  const s = Array.isArray(v) ? v[0] : v;
  const m = s ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(s) : null;
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}
