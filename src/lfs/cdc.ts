/**
 * Content-defined chunking and the chunk index of DESIGN.md's "Delta".
 *
 * Chunk boundaries come from the content (a gear rolling hash, FastCDC-style
 * with normalised chunking: Xia et al., USENIX ATC 2016), so an insertion or
 * deletion moves only the boundaries near it and the chunks after it are
 * found again in the next version. Chunks are 16 KiB–256 KiB, about 64 KiB on
 * average; each is named by its sha256.
 *
 * The gear table and every parameter are part of the format: a site must cut
 * its local files exactly as the publisher cut the new one, so the table is
 * derived from a fixed string and the parameters travel in the index.
 *
 * Index format (an LFS object named by a manifest's `files[].chunks`), JSON:
 *   {"format":"modelsync-chunks/1","algorithm":"gear32-fastcdc","min":16384,
 *    "avg":65536,"max":262144,"chunks":[[<size>,"<sha256>"],…],
 *    "oid":"<sha256 of the file>","size":<bytes>}
 * The whole file's oid and size come last so a publisher can write the index
 * while it reads the file (ChunkIndexWriter), holding none of it in memory.
 * Readers do not depend on the key order.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { z } from 'zod';
import { ChecksumError, ModelsyncError } from '../errors.ts';

export const CHUNK_FORMAT = 'modelsync-chunks/1';
export const CHUNK_ALGORITHM = 'gear32-fastcdc';

export interface ChunkParams {
  min: number;
  avg: number;
  max: number;
}

/** Sites refuse a larger index (lfs/http-fetcher.ts); publishers do not make one. About a 55 GiB file at the default parameters. */
export const MAX_CHUNK_INDEX_BYTES = 64 * 1024 * 1024;

export const DEFAULT_CHUNK_PARAMS: ChunkParams = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };

export interface Chunk {
  offset: number;
  size: number;
  sha256: string;
}

export interface ChunkIndex {
  params: ChunkParams;
  oid: string;
  size: number;
  chunks: Chunk[];
}

/** 256 pseudo-random 32-bit values, fixed forever by the format. */
const GEAR: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) table[i] = createHash('sha256').update(`modelsync-gear-${i}`).digest().readUInt32BE(0);
  return table;
})();

/** A mask with `bits` ones spread over the high 24 bits of a 32-bit hash (those depend on the last 8–32 bytes). */
function spreadMask(bits: number): number {
  let mask = 0;
  const step = 24 / bits;
  for (let i = 0; i < bits; i++) mask |= 1 << (31 - Math.floor(i * step));
  return mask >>> 0;
}

/**
 * A streaming chunker: push bytes, get the chunks that ended in them. Memory
 * is one hash state, whatever the file size.
 */
export class Chunker {
  private readonly maskS: number;
  private readonly maskL: number;
  private hash = 0;
  /** Bytes in the chunk being cut. */
  private len = 0;
  private offset = 0;
  private sha: Hash = createHash('sha256');

  constructor(readonly params: ChunkParams = DEFAULT_CHUNK_PARAMS) {
    checkParams(params);
    const bits = Math.round(Math.log2(params.avg));
    // Normalised chunking: harder to cut before the average size, easier after.
    this.maskS = spreadMask(Math.min(bits + 2, 24));
    this.maskL = spreadMask(Math.max(bits - 2, 1));
  }

  push(buf: Buffer, out: Chunk[] = []): Chunk[] {
    const { min, avg, max } = this.params;
    const n = buf.length;
    let start = 0; // where the current chunk's bytes begin in buf
    let i = 0;
    let h = this.hash;
    let len = this.len; // bytes of the current chunk before buf[i]
    while (i < n) {
      if (len < min - 32) {
        // The 32-bit gear hash only remembers the last 32 bytes: nothing before
        // min - 32 can influence a cut, so those bytes are not even hashed.
        const skip = Math.min(n - i, min - 32 - len);
        i += skip;
        len += skip;
        continue;
      }
      if (len < min) {
        const end = Math.min(n, i + (min - len));
        for (let j = i; j < end; j++) h = ((h << 1) + GEAR[buf[j]!]!) >>> 0;
        len += end - i;
        i = end;
        continue;
      }
      // Normalised chunking: a harder mask below the average size, an easier one above.
      const mask = len < avg ? this.maskS : this.maskL;
      const end = Math.min(n, i + ((len < avg ? avg : max) - len));
      let j = i;
      let found = false;
      while (j < end) {
        h = ((h << 1) + GEAR[buf[j++]!]!) >>> 0;
        if ((h & mask) === 0) {
          found = true;
          break;
        }
      }
      len += j - i;
      i = j;
      if (found || len >= max) {
        this.sha.update(buf.subarray(start, i));
        out.push({ offset: this.offset, size: len, sha256: this.sha.digest('hex') });
        this.offset += len;
        this.sha = createHash('sha256');
        start = i;
        len = 0;
        h = 0;
      }
    }
    if (start < n) this.sha.update(buf.subarray(start));
    this.hash = h;
    this.len = len;
    return out;
  }

  /** The last chunk, if bytes are left. */
  end(out: Chunk[] = []): Chunk[] {
    if (this.len > 0) out.push({ offset: this.offset, size: this.len, sha256: this.sha.digest('hex') });
    this.offset += this.len;
    this.len = 0;
    this.hash = 0;
    this.sha = createHash('sha256');
    return out;
  }
}

/** Cut a file into chunks (streaming) and hash the whole of it too. */
export async function chunkFile(path: string, params: ChunkParams = DEFAULT_CHUNK_PARAMS, signal?: AbortSignal): Promise<ChunkIndex> {
  const chunker = new Chunker(params);
  const whole = createHash('sha256');
  const chunks: Chunk[] = [];
  let size = 0;
  for await (const buf of createReadStream(path, { highWaterMark: 1 << 20, signal })) {
    whole.update(buf as Buffer);
    size += (buf as Buffer).length;
    chunker.push(buf as Buffer, chunks);
  }
  chunker.end(chunks);
  return { params, oid: whole.digest('hex'), size, chunks };
}

/**
 * For `publish`: chunk a file and return its index as the LFS object to store
 * (`bytes`, named by `oid`/`size`, which go into the manifest's `files[].chunks`).
 */
export async function buildChunkIndex(path: string, params: ChunkParams = DEFAULT_CHUNK_PARAMS): Promise<{ index: ChunkIndex; bytes: Buffer; oid: string; size: number }> {
  const index = await chunkFile(path, params);
  const bytes = serializeChunkIndex(index);
  return { index, bytes, oid: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

/** The bytes of the index object a publisher stores in LFS (see the format above). */
export function serializeChunkIndex(index: ChunkIndex): Buffer {
  const w = new ChunkIndexWriter(index.params);
  let text = w.head();
  for (const c of index.chunks) text += w.entry(c);
  return Buffer.from(text + w.tail(index.oid, index.size));
}

/**
 * The index of a file as it is read, as text pieces to append to the index
 * object: `push` each buffer of the file in order, write what it returns,
 * then `end` with the file's sha256 and size. Memory is one chunker, however
 * many chunks the file has. The bytes equal serializeChunkIndex's.
 */
export class ChunkIndexWriter {
  private readonly chunker: Chunker;
  private readonly cut: Chunk[] = [];
  private started = false;
  private first = true;

  constructor(readonly params: ChunkParams = DEFAULT_CHUNK_PARAMS) {
    this.chunker = new Chunker(params);
  }

  head(): string {
    this.started = true;
    return `{"format":${JSON.stringify(CHUNK_FORMAT)},"algorithm":${JSON.stringify(CHUNK_ALGORITHM)},"min":${this.params.min},"avg":${this.params.avg},"max":${this.params.max},"chunks":[`;
  }

  entry(c: Chunk): string {
    const sep = this.first ? '' : ',';
    this.first = false;
    return `${sep}[${c.size},"${c.sha256}"]`;
  }

  tail(oid: string, size: number): string {
    return `],"oid":"${oid}","size":${size}}`;
  }

  /** The index text for the chunks that ended in `buf` (the head too, the first time). */
  push(buf: Buffer): string {
    this.chunker.push(buf, this.cut);
    return this.flush();
  }

  /** The rest of the index, once the whole file went through `push`. */
  end(oid: string, size: number): string {
    this.chunker.end(this.cut);
    return this.flush() + this.tail(oid, size);
  }

  /** The head if not yet written, then the entries of the chunks just cut. */
  private flush(): string {
    let text = this.started ? '' : this.head();
    for (const c of this.cut) text += this.entry(c);
    this.cut.length = 0;
    return text;
  }
}

const SHA256 = /^[0-9a-f]{64}$/;
const Sha = z.string().regex(SHA256);
// The chunk list is checked by hand below: an index holds thousands of entries, and a schema per entry cost
// more than the rest of a small delta's planning (about 70 ms for 8,320 chunks).
const IndexDoc = z.object({
  format: z.literal(CHUNK_FORMAT),
  algorithm: z.literal(CHUNK_ALGORITHM),
  min: z.int().positive(),
  avg: z.int().positive(),
  max: z.int().positive(),
  oid: Sha,
  size: z.int().nonnegative(),
  chunks: z.array(z.unknown()),
});

/**
 * Parse an index downloaded from the registry (untrusted): known format,
 * sane parameters, chunk sizes within them, adding up to the file, and for
 * the object we are about to fetch.
 */
export function parseChunkIndex(bytes: Buffer, expect: { oid: string; size: number }): ChunkIndex {
  let doc: z.infer<typeof IndexDoc>;
  try {
    const parsed = IndexDoc.safeParse(JSON.parse(bytes.toString('utf8')));
    if (!parsed.success) throw new Error(`${parsed.error.issues[0]?.path.join('.') || '(root)'}: ${parsed.error.issues[0]?.message}`);
    doc = parsed.data;
    for (let i = 0; i < doc.chunks.length; i++) {
      const e = doc.chunks[i];
      if (!Array.isArray(e) || e.length !== 2 || !Number.isSafeInteger(e[0]) || e[0] <= 0 || typeof e[1] !== 'string' || !SHA256.test(e[1])) {
        throw new Error(`chunks.${i}: expected [size, sha256], a positive integer and 64 lowercase hex digits`);
      }
    }
  } catch (err) {
    throw invalidIndex(`not a chunk index (${(err as Error).message})`, expect.oid);
  }
  const params = { min: doc.min, avg: doc.avg, max: doc.max };
  try {
    checkParams(params);
  } catch (err) {
    throw invalidIndex((err as Error).message, expect.oid);
  }
  if (doc.oid !== expect.oid || doc.size !== expect.size) throw invalidIndex(`index is for ${doc.oid} (${doc.size} bytes)`, expect.oid);
  if (doc.chunks.length > Math.ceil(doc.size / params.min) + 1) throw invalidIndex('more chunks than the minimum chunk size allows', expect.oid);
  const chunks: Chunk[] = [];
  let offset = 0;
  for (const [size, sha256] of doc.chunks as Array<[number, string]>) {
    if (size > params.max) throw invalidIndex(`chunk at ${offset} is larger than ${params.max}`, expect.oid);
    chunks.push({ offset, size, sha256 });
    offset += size;
  }
  if (offset !== doc.size) throw new ChecksumError(`chunk index for ${expect.oid} covers ${offset} bytes, not ${doc.size}`, { oid: expect.oid, expectedSize: doc.size, actualSize: offset });
  return { params, oid: doc.oid, size: doc.size, chunks };
}

function checkParams(p: ChunkParams): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!(pow2(p.avg) && p.min >= 1024 && p.min <= p.avg && p.avg <= p.max && p.max <= 16 * 1024 * 1024)) {
    throw new RangeError(`unsupported chunk parameters min=${p.min} avg=${p.avg} max=${p.max}`);
  }
}

function invalidIndex(why: string, oid: string): ModelsyncError {
  return new ModelsyncError('InvalidChunkIndex', `chunk index for ${oid} is unusable: ${why}`, { retry: 'stalling', data: { oid } });
}
