/**
 * Chunk-delta downloads (DESIGN.md "Delta"): when a new object comes with a
 * chunk index and the site holds earlier versions of the same file, copy the
 * chunks the site already has and fetch only the missing byte ranges with
 * `Range: bytes=a-b` (adjacent ranges merged into one request), then verify
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
import { type Chunk, type ChunkIndex, chunkFile } from './cdc.ts';
import { type AttemptContext, parseContentRange } from './download.ts';
import { hrefHeaders } from './href.ts';
import { errorBodyMessage, protocolError, statusError, wrapNetworkError } from './http.ts';
import { describeUrl } from './scrub.ts';
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

/**
 * Write `part` from `from` to the end following `plan`, hashing into `hash`
 * (which already holds the first `from` bytes). Resolves when the whole file
 * hashes to the oid; throws otherwise (the .part keeps a valid prefix unless
 * the final checksum failed, in which case it is the caller's to remove).
 */
export async function executeDelta(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string, plan: readonly Segment[], from: number, hash: Hash): Promise<{ reused: number }> {
  const out = await fsp.open(part, from > 0 ? 'r+' : 'w');
  const sources = new Map<string, fsp.FileHandle>();
  let pos = from;
  let reused = 0;
  try {
    await out.truncate(from);
    for (const seg of plan) {
      if (seg.offset !== pos) throw new Error(`delta plan gap at ${pos}`);
      if (seg.kind === 'local') {
        const buf = await readLocal(sources, seg);
        if (buf && createHash('sha256').update(buf).digest('hex') === seg.sha256) {
          await out.write(buf, 0, buf.length, pos);
          hash.update(buf);
          reused += buf.length;
          ctx.onProgress?.({ oid: obj.oid, bytes: pos + buf.length, size: obj.size });
        } else {
          // The local file changed since it was chunked: fetch this chunk instead.
          await fetchRange(ctx, obj, action, out, pos, seg.size, hash);
        }
      } else {
        await fetchRange(ctx, obj, action, out, pos, seg.size, hash);
      }
      pos += seg.size;
    }
    if (pos !== obj.size) throw new Error(`delta plan ends at ${pos}, object is ${obj.size} bytes`);
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

/** GET bytes [start, start+size) and write them at `start`; the server must answer 206 with that exact range. */
async function fetchRange(ctx: AttemptContext, obj: LfsObject, action: LfsAction, out: fsp.FileHandle, start: number, size: number, hash: Hash): Promise<void> {
  const url = action.href;
  const where = describeUrl(url);
  const headers = { ...hrefHeaders(action.header, url, ctx), range: `bytes=${start}-${start + size - 1}` };
  const res = await ctx.transport.send(url, { headers, signal: ctx.signal });
  const status = res.statusCode ?? 0;
  if (status !== 206) {
    if (status === 200) {
      res.destroy();
      throw protocolError(`${where} ignores byte ranges (200 to a Range request): no chunk-delta from this server`, { url: where });
    }
    throw statusError(status, `range of ${obj.oid.slice(0, 12)}`, where, await errorBodyMessage(res), res.headers);
  }
  const range = parseContentRange(res.headers['content-range']);
  if (!range || range.start !== start || range.end !== start + size - 1 || (range.total !== undefined && range.total !== obj.size)) {
    res.destroy();
    throw protocolError(`${where} answered bytes=${start}-${start + size - 1} with Content-Range ${String(res.headers['content-range'])}`, { url: where });
  }
  let pos = start;
  try {
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      if (pos + buf.length > start + size) throw protocolError(`${where} sent more than the ${size} bytes asked for`);
      ctx.counters.networkBytes += buf.length;
      if (ctx.bucket) await ctx.bucket.take(buf.length, ctx.signal);
      hash.update(buf);
      await out.write(buf, 0, buf.length, pos);
      pos += buf.length;
      ctx.onProgress?.({ oid: obj.oid, bytes: pos, size: obj.size });
    }
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw wrapNetworkError(err, 'GET', where);
  }
  if (pos !== start + size) throw new NetworkError(`range ${start}-${start + size - 1} of ${obj.oid.slice(0, 12)} from ${where} ended after ${pos - start} bytes`, { url: where });
}

/** Chunks of `index` found in `local`, for logs and the decision to try a delta at all. */
export function reusableBytes(index: ChunkIndex, local: ReadonlyMap<string, LocalChunk>): number {
  let n = 0;
  for (const c of index.chunks as Chunk[]) if (local.has(c.sha256)) n += c.size;
  return n;
}
