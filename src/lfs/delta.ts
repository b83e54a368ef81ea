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
import { ChecksumError, NetworkError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { speedFloor } from './body.ts';
import { type Chunk, type ChunkIndex, chunkFile } from './cdc.ts';
import { type AttemptContext, openHref, parseContentRange } from './download.ts';
import { errorBodyMessage, protocolError, statusError, wrapNetworkError } from './http.ts';
import { describeUrl } from './scrub.ts';
import { runPool } from './pool.ts';
import type { LfsObject } from './types.ts';

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

export interface LocalChunk {
  path: string;
  offset: number;
}

/** Where each chunk (by sha256) can be read locally. */
export async function indexLocalFiles(paths: readonly string[], index: ChunkIndex, signal?: AbortSignal): Promise<Map<string, LocalChunk>> {
  const have = new Map<string, LocalChunk>();
  for (const path of paths) {
    let local: ChunkIndex;
    try {
      local = await chunkFile(path, index.params, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      continue; // unreadable candidate: just not a source
    }
    for (const c of local.chunks) if (!have.has(c.sha256)) have.set(c.sha256, { path, offset: c.offset });
  }
  return have;
}

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

/**
 * Write `part` from `from` to the end following `plan`: local chunks first
 * (each re-hashed as it is copied), then the missing ranges, several at a
 * time, each written at its place. Then the file from `from` on is hashed
 * into `hash` (which already holds the first `from` bytes) and resolves when
 * the whole file hashes to the oid. On a failed range the .part is cut back
 * to its longest complete prefix, for the normal download to resume from;
 * after a failed final checksum it is the caller's to remove.
 */
export async function executeDelta(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string, plan: readonly Segment[], from: number, hash: Hash): Promise<{ reused: number }> {
  // Read back at the end for the hash: opened for reading as well as writing.
  const out = await fsp.open(part, from > 0 ? 'r+' : 'w+');
  const sources = new Map<string, fsp.FileHandle>();
  let reused = 0;
  let written = from;
  const done = new Array<boolean>(plan.length).fill(false);
  const progress = (n: number) => {
    written += n;
    ctx.onProgress?.({ oid: obj.oid, bytes: written, size: obj.size });
  };
  try {
    await out.truncate(from);
    let pos = from;
    const remote: number[] = [];
    for (const [i, seg] of plan.entries()) {
      if (seg.offset !== pos) throw new Error(`delta plan gap at ${pos}`);
      pos += seg.size;
      if (seg.kind === 'local') {
        const buf = await readLocal(sources, seg);
        if (buf && createHash('sha256').update(buf).digest('hex') === seg.sha256) {
          await out.write(buf, 0, buf.length, seg.offset);
          reused += buf.length;
          done[i] = true;
          progress(buf.length);
          continue;
        }
        // The local file changed since it was chunked: fetch this chunk instead.
      }
      remote.push(i);
    }
    if (pos !== obj.size) throw new Error(`delta plan ends at ${pos}, object is ${obj.size} bytes`);
    try {
      await runPool(remote, RANGE_CONCURRENCY, async (i) => {
        const seg = plan[i]!;
        await fetchRange(ctx, obj, action, out, seg.offset, seg.size, progress);
        done[i] = true;
      }, ctx.signal);
    } catch (err) {
      // Keep what is complete from the start on: the resumed download continues from there.
      const firstMissing = done.indexOf(false);
      await out.truncate(firstMissing < 0 ? obj.size : plan[firstMissing]!.offset).catch(() => {});
      throw err;
    }
    await hashRange(out, from, obj.size, hash);
  } finally {
    await out.close();
    for (const fh of sources.values()) await fh.close().catch(() => {});
  }
  const digest = hash.digest('hex');
  if (digest !== obj.oid) {
    throw new ChecksumError(`checksum mismatch for ${obj.oid} after a chunk-delta download: got ${digest}`, { oid: obj.oid, actual: digest });
  }
  return { reused };
}

async function hashRange(fh: fsp.FileHandle, from: number, to: number, hash: Hash): Promise<void> {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = from; pos < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - pos), pos);
    if (bytesRead === 0) throw new Error(`delta file ends at ${pos}, expected ${to} bytes`);
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

async function readLocal(sources: Map<string, fsp.FileHandle>, seg: Extract<Segment, { kind: 'local' }>): Promise<Buffer | null> {
  try {
    let fh = sources.get(seg.path);
    if (!fh) {
      fh = await fsp.open(seg.path, 'r');
      sources.set(seg.path, fh);
    }
    const buf = Buffer.allocUnsafe(seg.size);
    const { bytesRead } = await fh.read(buf, 0, seg.size, seg.from);
    return bytesRead === seg.size ? buf : null;
  } catch {
    return null;
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
  const { res, url } = await openHref(ctx, action, `bytes=${start}-${end}`);
  const where = describeUrl(url);
  const status = res.statusCode ?? 0;
  if (status !== 206) {
    if (status === 200) {
      res.destroy();
      throw protocolError(`${where} ignores byte ranges (200 to a Range request): no chunk-delta from this server`, { url: where });
    }
    throw statusError(status, `range of ${obj.oid.slice(0, 12)}`, where, await errorBodyMessage(res), res.headers);
  }
  const range = parseContentRange(res.headers['content-range']);
  if (!range || range.start > start || range.end < end || (range.total !== undefined && range.total !== obj.size)) {
    res.destroy();
    throw protocolError(`${where} answered bytes=${start}-${end} with Content-Range ${String(res.headers['content-range'])}`, { url: where });
  }
  let skip = start - range.start;
  let pos = start;
  const floor = speedFloor(res, where, ctx.transport.timeoutMs);
  try {
    for await (const chunk of res) {
      let buf = chunk as Buffer;
      floor.got(buf.length);
      ctx.counters.networkBytes += buf.length;
      if (skip > 0) {
        const drop = Math.min(skip, buf.length);
        skip -= drop;
        buf = buf.subarray(drop);
      }
      if (pos + buf.length > start + size) buf = buf.subarray(0, start + size - pos);
      if (buf.length > 0) {
        if (ctx.bucket) await floor.held(ctx.bucket.take(buf.length, ctx.signal));
        await out.write(buf, 0, buf.length, pos);
        pos += buf.length;
        progress(buf.length);
      }
      // Everything asked for is here: the rest of a 206-to-the-end is not ours to read (leaving the loop closes it).
      if (pos === start + size) break;
    }
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw wrapNetworkError(err, 'GET', where);
  } finally {
    floor.stop();
  }
  if (range.end > end) res.destroy();
  if (pos !== start + size) throw new NetworkError(`range ${start}-${end} of ${obj.oid.slice(0, 12)} from ${where} ended after ${pos - start} bytes`, { url: where });
}

/** Chunks of `index` found in `local`, for logs and the decision to try a delta at all. */
export function reusableBytes(index: ChunkIndex, local: ReadonlyMap<string, LocalChunk>): number {
  let n = 0;
  for (const c of index.chunks as Chunk[]) if (local.has(c.sha256)) n += c.size;
  return n;
}
