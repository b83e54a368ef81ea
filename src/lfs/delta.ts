/**
 * Chunk-delta downloads (DESIGN.md "Delta"): when a new object comes with a
 * chunk index and the site holds earlier versions of the same file, copy the
 * chunks the site already has and fetch only the missing byte ranges with
 * `Range: bytes=a-b` (adjacent ranges merged, one range per request, a few
 * requests at a time), then verify
 * the whole file against its oid like any download.
 *
 * Every local chunk is re-hashed as it is copied, so a local file that changed
 * since it was chunked costs a range request, not a bad file. Any doubt (an
 * unusable index, a server that ignores ranges, a final checksum mismatch)
 * ends the delta attempt and the caller falls back to the full download.
 */
import { createHash, type Hash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ChecksumError, NetworkError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { openBody } from './body.ts';
import type { Chunk, ChunkIndex } from './cdc.ts';
import { type LocalChunk, readSpans } from './delta-local.ts';
import { type AttemptContext, parseContentRange } from './download.ts';
import { errorBodyMessage, protocolError, statusError, wrapNetworkError } from './http.ts';
import { describeUrl } from './scrub.ts';
import { runPool } from './pool.ts';
import { EarlyWriteback } from '../util/writeback.ts';
import type { LfsObject } from './types.ts';

export { indexLocalFiles, type LocalChunk } from './delta-local.ts';

/** Objects smaller than this are downloaded whole: a delta would save too little to pay for reading local files. */
export const DELTA_MIN_OBJECT_BYTES = 4 * 1024 * 1024;

/**
 * Whether a delta is worth its extra requests: it must reuse at least 1 MiB
 * and a tenth of what is left to fetch. The fetcher decides with this, and
 * `modelsync plan` estimates with it, so the estimate follows the site.
 */
export function deltaWorthIt(reusable: number, remaining: number): boolean {
  return reusable >= Math.max(1024 * 1024, remaining / 10);
}

/** A piece of the new file, in file order: copied from a local file, or fetched. */
export type Segment =
  | { kind: 'local'; offset: number; size: number; sha256: string; path: string; from: number }
  | { kind: 'remote'; offset: number; size: number };

/**
 * Plan the new file from `from` (bytes already in the .part) to its end:
 * local chunks where we have them, merged remote ranges for the rest.
 */
export function planDelta(index: ChunkIndex, local: ReadonlyMap<string, LocalChunk>, from = 0): Segment[] {
  const out: Segment[] = [];
  const remote = (offset: number, size: number) => {
    const last = out[out.length - 1];
    if (last?.kind === 'remote' && last.offset + last.size === offset) last.size += size;
    else out.push({ kind: 'remote', offset, size });
  };
  for (const c of index.chunks) {
    const end = c.offset + c.size;
    if (end <= from) continue;
    if (c.offset < from) {
      remote(from, end - from);
      continue;
    }
    const at = local.get(c.sha256);
    if (at) out.push({ kind: 'local', offset: c.offset, size: c.size, sha256: c.sha256, path: at.path, from: at.offset });
    else remote(c.offset, c.size);
  }
  return out;
}

export function plannedBytes(plan: readonly Segment[]): { local: number; remote: number; requests: number } {
  let local = 0;
  let remote = 0;
  let requests = 0;
  for (const s of plan) {
    if (s.kind === 'local') local += s.size;
    else {
      remote += s.size;
      requests++;
    }
  }
  return { local, remote, requests };
}

/** Range requests in flight at once for one object: enough to hide a WAN round trip, few enough to be polite. */
export const RANGE_CONCURRENCY = 4;

/** Received range bytes are written in batches of this size. */
const WRITE_BATCH = 1 << 20;

/** A missing range longer than this is fetched as several requests in parallel (one stream is slower than a few, even on loopback). */
const RANGE_PIECE = 8 << 20;

/** Local bytes are copied in pieces of this size, one read ahead while the last is hashed and written. */
const COPY_PIECE = 8 << 20;

interface Piece {
  path: string;
  from: number;
  offset: number;
  size: number;
}

/**
 * Write `part` from `from` to the end following `plan`, in one pass in file
 * order: local bytes are read once (large reads, the next in flight), hashed
 * into `hash` (which already holds the first `from` bytes) and written; the
 * missing ranges are fetched meanwhile, several at a time, each written at
 * its place and hashed when the pass reaches it. Resolves when the whole
 * file hashes to the oid.
 *
 * The local chunks were matched by their sha256 when the site's files were
 * indexed; they are not hashed one by one again here, the whole-file sha256
 * covers them. If it does not match, each local chunk is checked in the
 * .part and the ones that changed since (a local file modified under us) are
 * fetched instead, then the file is hashed again: a bad local file costs a
 * few ranges, never a bad object. On a failed range the .part is cut back to
 * its longest complete prefix, for the normal download to resume from; after
 * a failed final checksum it is the caller's to remove.
 */
export async function executeDelta(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string, plan: readonly Segment[], from: number, hash: Hash): Promise<{ reused: number }> {
  let pos = from;
  for (const seg of plan) {
    if (seg.offset !== pos) throw new Error(`delta plan gap at ${pos}`);
    pos += seg.size;
  }
  if (pos !== obj.size) throw new Error(`delta plan ends at ${pos}, object is ${obj.size} bytes`);

  const base = hash.copy();
  const out = await fsp.open(part, from > 0 ? 'r+' : 'w+');
  const sources = new Map<string, fsp.FileHandle>();
  let written = from;
  const writeback = new EarlyWriteback(out);
  const progress = (n: number) => {
    written += n;
    writeback.wrote(n);
    ctx.onProgress?.({ oid: obj.oid, bytes: written, size: obj.size });
  };
  // Stops the range requests still running when the local pass fails.
  const stop = new AbortController();
  const rctx: AttemptContext = { ...ctx, signal: ctx.signal ? AbortSignal.any([ctx.signal, stop.signal]) : stop.signal };
  let walked = from;
  let reused = 0;
  try {
    // ('w+' already emptied it: an ftruncate to 0 would also make ext4 flush the whole file on close.)
    if (from > 0) await out.truncate(from);
    const remote = plan.flatMap((s, i) => (s.kind === 'remote' ? [i] : []));
    const fetched = new Map<number, { promise: Promise<void>; resolve(): void; reject(e: unknown): void }>();
    for (const i of remote) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => {});
      fetched.set(i, { promise, resolve, reject });
    }
    const jobs = remote.flatMap((i) => {
      const seg = plan[i]!;
      const n = Math.max(1, Math.min(RANGE_CONCURRENCY, Math.floor(seg.size / RANGE_PIECE)));
      const step = Math.ceil(seg.size / n);
      return Array.from({ length: n }, (_, k) => ({ i, offset: seg.offset + k * step, size: Math.min(step, seg.size - k * step) }));
    });
    const left = new Map(remote.map((i) => [i, jobs.filter((j) => j.i === i).length]));
    const pool = runPool(jobs, RANGE_CONCURRENCY, async (j) => {
      try {
        await fetchRangeResuming(rctx, obj, action, out, j.offset, j.size, progress);
        left.set(j.i, left.get(j.i)! - 1);
        if (left.get(j.i) === 0) fetched.get(j.i)!.resolve();
      } catch (err) {
        fetched.get(j.i)!.reject(err);
        throw err;
      }
    }, rctx.signal).catch((err: unknown) => {
      for (const f of fetched.values()) f.reject(err);
    });
    try {
      const bufs = [Buffer.allocUnsafe(COPY_PIECE), Buffer.allocUnsafe(COPY_PIECE)];
      let flip = 0;
      let ahead: Promise<Buffer> | undefined;
      const items = walkOrder(plan);
      for (const [k, item] of items.entries()) {
        if (typeof item === 'number') {
          const seg = plan[item]!;
          await fetched.get(item)!.promise;
          await hashRange(out, seg.offset, seg.offset + seg.size, hash);
          walked = seg.offset + seg.size;
          continue;
        }
        const buf = await (ahead ?? readPiece(sources, item, bufs[flip]!));
        const next = items[k + 1];
        flip ^= 1;
        ahead = next !== undefined && typeof next !== 'number' ? readPiece(sources, next, bufs[flip]!) : undefined;
        ahead?.catch(() => {});
        const w = out.write(buf, 0, item.size, item.offset);
        hash.update(buf.subarray(0, item.size));
        await w;
        reused += item.size;
        walked = item.offset + item.size;
        progress(item.size);
      }
    } catch (err) {
      stop.abort();
      await pool;
      // Keep what is complete from the start on: the resumed download continues from there.
      await out.truncate(walked).catch(() => {});
      throw err;
    }
    await pool;
    let digest = hash.digest('hex');
    if (digest !== obj.oid) {
      const bad = await changedLocalChunks(out, plan, obj.size);
      if (bad.length > 0) {
        await runPool(bad, RANGE_CONCURRENCY, async (i) => fetchRange(rctx, obj, action, out, plan[i]!.offset, plan[i]!.size, () => {}), rctx.signal);
        reused -= bad.reduce((n, i) => n + plan[i]!.size, 0);
        const again = base.copy();
        await hashRange(out, from, obj.size, again);
        digest = again.digest('hex');
      }
    }
    if (digest !== obj.oid) {
      throw new ChecksumError(`checksum mismatch for ${obj.oid} after a chunk-delta download: got ${digest}`, { oid: obj.oid, actual: digest });
    }
  } finally {
    await writeback.settle();
    await out.close();
    for (const fh of sources.values()) await fh.close().catch(() => {});
  }
  return { reused };
}

/**
 * The pass's order: plan indexes for remote segments, and for runs of local
 * chunks that are contiguous in one local file, pieces of at most COPY_PIECE
 * (a file whose chunks stayed in place becomes a few large copies).
 */
function walkOrder(plan: readonly Segment[]): Array<number | Piece> {
  const out: Array<number | Piece> = [];
  let run: Piece | undefined;
  const flush = () => {
    if (!run) return;
    for (let off = 0; off < run.size; off += COPY_PIECE) {
      out.push({ path: run.path, from: run.from + off, offset: run.offset + off, size: Math.min(COPY_PIECE, run.size - off) });
    }
    run = undefined;
  };
  for (const [i, seg] of plan.entries()) {
    if (seg.kind === 'remote') {
      flush();
      out.push(i);
    } else if (run && run.path === seg.path && run.from + run.size === seg.from) {
      run.size += seg.size;
    } else {
      flush();
      run = { path: seg.path, from: seg.from, offset: seg.offset, size: seg.size };
    }
  }
  flush();
  return out;
}

async function readPiece(sources: Map<string, fsp.FileHandle>, p: Piece, buf: Buffer): Promise<Buffer> {
  let fh = sources.get(p.path);
  if (!fh) {
    fh = await fsp.open(p.path, 'r');
    sources.set(p.path, fh);
  }
  for (let n = 0; n < p.size; ) {
    const { bytesRead } = await fh.read(buf, n, p.size - n, p.from + n);
    if (bytesRead === 0) throw new Error(`${p.path} ends before byte ${p.from + p.size}: it changed since it was indexed`);
    n += bytesRead;
  }
  return buf;
}

/** Plan indexes of local chunks whose bytes in the .part do not hash to their sha256. */
async function changedLocalChunks(out: fsp.FileHandle, plan: readonly Segment[], size: number): Promise<number[]> {
  const local = plan.flatMap((s, i) => (s.kind === 'local' ? [i] : []));
  const bad: number[] = [];
  const max = Math.max(0, ...local.map((i) => plan[i]!.size));
  await readSpans(out, local.map((i) => plan[i]!), size, max, undefined, (k, bytes) => {
    const seg = plan[local[k]!] as Extract<Segment, { kind: 'local' }>;
    if (createHash('sha256').update(bytes).digest('hex') !== seg.sha256) bad.push(local[k]!);
  });
  return bad;
}

async function hashRange(fh: fsp.FileHandle, from: number, to: number, hash: Hash): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(COPY_PIECE, Math.max(1, to - from)));
  for (let pos = from; pos < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - pos), pos);
    if (bytesRead === 0) throw new Error(`delta file ends at ${pos}, expected ${to} bytes`);
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

/** Attempts at one missing range before the delta gives up (and the download resumes from the longest complete prefix). */
const RANGE_ATTEMPTS = 3;

/**
 * fetchRange, resumed from the last byte written when the connection fails
 * (reset, idle timeout, found dead by stall.ts): on a flaky link one cut
 * costs a request, not the rest of the delta. Answers from the server
 * (an HTTP status, a server that ignores ranges) end the attempt as before.
 */
async function fetchRangeResuming(ctx: AttemptContext, obj: LfsObject, action: LfsAction, out: fsp.FileHandle, start: number, size: number, progress: (n: number) => void): Promise<void> {
  let at = start;
  for (let attempt = 1; ; attempt++) {
    try {
      await fetchRange(ctx, obj, action, out, at, start + size - at, (n) => {
        at += n;
        progress(n);
      });
      return;
    } catch (err) {
      const connection = err instanceof NetworkError && err.data.status === undefined && err.retry !== 'stalling';
      if (!connection || attempt >= RANGE_ATTEMPTS || ctx.signal?.aborted) throw err;
      await new Promise((r) => setTimeout(r, 250 * attempt));
    }
  }
}

/**
 * GET bytes [start, start+size) and write them at `start`. One range per
 * request: S3, Gitea and many object stores refuse multi-range requests. Any
 * 206 whose Content-Range covers the request is used: many servers answer
 * `bytes=a-b` with everything from a to the end of the object (RFC 9110
 * allows it), so we read what we need and drop the connection. Redirects are
 * followed as for a whole download.
 */
async function fetchRange(ctx: AttemptContext, obj: LfsObject, action: LfsAction, out: fsp.FileHandle, start: number, size: number, progress: (n: number) => void): Promise<void> {
  const end = start + size - 1;
  // node:http (not wire.ts): the socket's chunks are fresh buffers, safe to hold until the next writev.
  const { res, url } = await openBody(ctx, action, `bytes=${start}-${end}`, false);
  const where = describeUrl(url);
  const status = res.statusCode;
  if (status !== 206) {
    if (status === 200) {
      res.destroy();
      throw protocolError(`${where} ignores byte ranges (200 to a Range request): no chunk-delta from this server`, { url: where });
    }
    throw statusError(status, `range of ${obj.oid.slice(0, 12)}`, where, await errorBodyMessage(res.readable() as IncomingMessage), res.headers);
  }
  const range = parseContentRange(res.headers['content-range']);
  if (!range || range.start > start || range.end < end || (range.total !== undefined && range.total !== obj.size)) {
    res.destroy();
    throw protocolError(`${where} answered bytes=${start}-${end} with Content-Range ${String(res.headers['content-range'])}`, { url: where });
  }
  let skip = start - range.start;
  let pos = start;
  // Socket chunks (often 64 KiB) are gathered and written with one writev per MiB: far fewer awaited writes.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let at = start;
  const flush = async () => {
    if (pendingBytes === 0) return;
    const { bytesWritten } = await out.writev(pending, at);
    if (bytesWritten !== pendingBytes) throw new Error(`short write at ${at}`);
    at += pendingBytes;
    progress(pendingBytes);
    pending = [];
    pendingBytes = 0;
  };
  try {
    // The body's speed floor and dead-connection watch come with openBody; a wait the sink returns
    // (our cap, a write) is not the connection's silence.
    await res.pipe((chunk) => {
      let buf = chunk;
      ctx.counters.networkBytes += buf.length;
      if (skip > 0) {
        const drop = Math.min(skip, buf.length);
        skip -= drop;
        buf = buf.subarray(drop);
      }
      if (pos + buf.length > start + size) buf = buf.subarray(0, start + size - pos);
      pending.push(buf);
      pendingBytes += buf.length;
      pos += buf.length;
      // Everything asked for is here: the rest of a 206-to-the-end is not ours to read (false closes it).
      if (pos === start + size) return false;
      const cap = buf.length > 0 ? ctx.bucket?.take(buf.length, ctx.signal) : undefined;
      if (pendingBytes >= WRITE_BATCH) return Promise.all([cap, flush()]).then(() => {});
      return cap;
    });
    await flush();
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw wrapNetworkError(err, 'GET', where);
  }
  if (pos !== start + size) throw new NetworkError(`range ${start}-${end} of ${obj.oid.slice(0, 12)} from ${where} ended after ${pos - start} bytes`, { url: where });
}

/** Chunks of `index` found in `local`, for logs and the decision to try a delta at all. */
export function reusableBytes(index: ChunkIndex, local: ReadonlyMap<string, LocalChunk>): number {
  let n = 0;
  for (const c of index.chunks as Chunk[]) if (local.has(c.sha256)) n += c.size;
  return n;
}
