/**
 * Finding the new file's chunks in the site's local files, reading each local
 * file at most once in the common case.
 *
 * Most new versions keep their unchanged bytes where they were (retrained
 * tensors rewritten in place, data appended): the cut points up to the first
 * changed byte are the same in both files, and resynchronise after a change
 * of the same length. So each new chunk is first looked for at its own offset
 * in the local file (one sequential read, one sha256 per chunk). Only where
 * that misses, the local file is cut with the index's parameters (the full
 * content-defined search, which finds chunks an insertion or deletion moved),
 * from the first miss on rather than from the start.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { type Chunk, type ChunkIndex, Chunker } from './cdc.ts';

export interface LocalChunk {
  path: string;
  offset: number;
}

/** Reads of at least this size keep syscalls few and the page cache streaming (a block holds the largest chunk). */
const MIN_BLOCK = 8 << 20;

/** Where each chunk (by sha256) can be read locally, added to `have` (chunks already there are not looked for). */
export async function indexLocalFiles(paths: readonly string[], index: ChunkIndex, signal?: AbortSignal, have = new Map<string, LocalChunk>()): Promise<Map<string, LocalChunk>> {
  for (const path of paths) {
    try {
      await indexOne(path, index, have, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      // unreadable candidate: just not a source (what it matched is verified again when used)
    }
  }
  return have;
}

async function indexOne(path: string, index: ChunkIndex, have: Map<string, LocalChunk>, signal?: AbortSignal): Promise<void> {
  const fh = await fsp.open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    // 1. Each new chunk at its own offset.
    const probe = index.chunks.filter((c) => !have.has(c.sha256) && c.offset + c.size <= size);
    let firstMiss = -1;
    await readSpans(fh, probe, size, index.params.max, signal, (i, bytes) => {
      const c = probe[i]!;
      if (createHash('sha256').update(bytes).digest('hex') === c.sha256) have.set(c.sha256, { path, offset: c.offset });
      else if (firstMiss < 0) firstMiss = c.offset;
    });
    // A new chunk that runs past this file's end (data appended) also counts as a miss from its offset.
    const straddle = index.chunks.find((c) => !have.has(c.sha256) && c.offset < size && c.offset + c.size > size);
    if (straddle && (firstMiss < 0 || straddle.offset < firstMiss)) firstMiss = straddle.offset;
    if (firstMiss < 0) return;
    // 2. The content-defined search over the rest, starting at a cut point both files share.
    const missing = new Set(index.chunks.filter((c) => !have.has(c.sha256)).map((c) => c.sha256));
    if (missing.size === 0) return;
    const chunker = new Chunker(index.params);
    const cut: Chunk[] = [];
    const take = (list: Chunk[]) => {
      for (const c of list) if (missing.has(c.sha256) && !have.has(c.sha256)) have.set(c.sha256, { path, offset: firstMiss + c.offset });
      list.length = 0;
    };
    const buf = Buffer.allocUnsafe(MIN_BLOCK);
    for (let pos = firstMiss; pos < size; ) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, Math.min(MIN_BLOCK, size - pos), pos);
      if (bytesRead === 0) break;
      chunker.push(buf.subarray(0, bytesRead), cut);
      take(cut);
      pos += bytesRead;
    }
    take(chunker.end(cut));
  } finally {
    await fh.close();
  }
}

/**
 * Call `each(chunk, bytes)` for chunks (in offset order, within the file) with
 * their bytes, reading the file in large sequential blocks with the next read
 * in flight while the current block is processed.
 */
export async function readSpans(
  fh: fsp.FileHandle,
  chunks: readonly Pick<Chunk, 'offset' | 'size'>[],
  size: number,
  maxChunk: number,
  signal: AbortSignal | undefined,
  each: (i: number, bytes: Buffer) => void,
): Promise<void> {
  if (chunks.length === 0) return;
  const block = Math.max(MIN_BLOCK, maxChunk);
  const bufs = [Buffer.allocUnsafe(block), Buffer.allocUnsafe(block)];
  const read = async (which: number, at: number): Promise<{ at: number; n: number }> => {
    const want = Math.min(block, size - at);
    let n = 0;
    while (n < want) {
      const { bytesRead } = await fh.read(bufs[which]!, n, want - n, at + n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return { at, n };
  };
  let i = 0;
  let which = 0;
  let pending: Promise<{ at: number; n: number }> | undefined = read(which, chunks[0]!.offset);
  while (pending) {
    signal?.throwIfAborted();
    const got: { at: number; n: number } = await pending;
    const { at, n } = got;
    const buf = bufs[which]!;
    // Chunks that lie whole in this block; the next block starts at the first one that does not.
    let j = i;
    while (j < chunks.length && chunks[j]!.offset >= at && chunks[j]!.offset + chunks[j]!.size <= at + n) j++;
    const nextAt = j < chunks.length ? chunks[j]!.offset : -1;
    which ^= 1;
    pending = nextAt >= 0 && (j > i || nextAt !== at) ? read(which, nextAt) : undefined;
    for (; i < j; i++) each(i, buf.subarray(chunks[i]!.offset - at, chunks[i]!.offset - at + chunks[i]!.size));
    if (!pending && j < chunks.length) throw new Error(`${chunks[j]!.offset}: chunk past the end of the file`);
  }
}
