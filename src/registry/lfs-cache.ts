/**
 * The git-lfs local object cache of a repository (`<gitdir>/lfs/objects/aa/bb/<oid>`),
 * filled the way git-lfs fills it, so stock `git lfs push`, `git lfs fsck`
 * and `git lfs checkout` work on what publish stored.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StoreError, UsageError, isDiskFull } from '../errors.ts';
import { ChunkIndexWriter } from '../lfs/cdc.ts';
import { checkInterrupted } from './interrupt.ts';
import { fsyncDir, pathExists, tempSibling } from '../util/fsutil.ts';
import { lfsObjectRelPath } from './lfs-pointer.ts';

export interface CachedObject {
  oid: string;
  size: number;
  /** Absolute path of the object in the cache. */
  path: string;
  /** False when the cache already held this content. */
  added: boolean;
}

export interface AddOptions {
  /** Ctrl-C: stops the copy and removes the temporary files. */
  signal?: AbortSignal;
  /**
   * Also build the file's chunk index (lfs/cdc.ts) in the same read pass and
   * cache it as an object of its own. Dropped (undefined) when it would be
   * larger than `maxIndexBytes`: sites refuse such an index anyway.
   */
  chunkIndex?: { maxIndexBytes: number };
}

export interface AddResult extends CachedObject {
  /** The chunk index object, when asked for and kept. */
  chunkIndex?: CachedObject;
}

/** Index text is written to its file in pieces of about this size (it grows ~75 bytes per 64 KiB of file). */
const INDEX_FLUSH_BYTES = 256 * 1024;

export function lfsObjectPath(gitdir: string, oid: string): string {
  return join(gitdir, lfsObjectRelPath(oid));
}

/**
 * Copy `src` into the cache while hashing it, in one streaming pass (memory
 * stays flat whatever the size). The copy lands under a temporary name in
 * `<gitdir>/lfs/tmp` and is renamed into place only once complete and
 * flushed, so the cache never holds a partial object. A file that changes
 * while it is read (still being written by a training job, say) is refused
 * rather than published as a mix of two versions. `signal` (Ctrl-C) stops
 * the copy and removes the temporary file. With `chunkIndex`, the chunk
 * index is cut from the same bytes as they pass and streamed to a second
 * temporary file: no second read of the file, and no index held in memory.
 */
export async function addToLfsCache(gitdir: string, src: string, options: AddOptions | AbortSignal = {}): Promise<AddResult> {
  const opts: AddOptions = options instanceof AbortSignal ? { signal: options } : options;
  const signal = opts.signal;
  const tmpDir = join(gitdir, 'lfs', 'tmp');
  await fsp.mkdir(tmpDir, { recursive: true });
  const tmp = tempSibling(join(tmpDir, 'publish'));
  const indexTmp = opts.chunkIndex ? tempSibling(join(tmpDir, 'publish-index')) : undefined;
  const hash = createHash('sha256');
  let size = 0;
  const index = opts.chunkIndex ? new IndexSink(new ChunkIndexWriter(), opts.chunkIndex.maxIndexBytes) : undefined;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      if (!index) return cb(null, chunk);
      index.push(chunk).then(() => cb(null, chunk), cb);
    },
  });
  try {
    const before = await fsp.stat(src);
    if (index) await index.open(indexTmp!);
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), tap, out, { signal });
    const after = await fsp.stat(src);
    if (!sameFile(before, after) || after.size !== size) {
      throw new UsageError(`${src} changed while it was being read (${before.size} -> ${after.size} bytes); publish it once it is complete`, { file: src });
    }
    await syncFile(tmp);
    const oid = hash.digest('hex');
    // Both complete before either enters the cache; the index goes in first and comes
    // out again if the model's rename fails: the caller can only forget objects it was
    // told of, so a failure here must leave neither behind.
    const idx = await index?.finish(oid, size);
    if (!idx) {
      if (indexTmp) await fsp.rm(indexTmp, { force: true });
      return moveIntoCache(gitdir, tmp, oid, size);
    }
    const chunkIndex = await moveIntoCache(gitdir, indexTmp!, idx.oid, idx.size);
    try {
      return { ...(await moveIntoCache(gitdir, tmp, oid, size)), chunkIndex };
    } catch (err) {
      if (chunkIndex.added) await fsp.rm(lfsObjectPath(gitdir, idx.oid), { force: true }).catch(() => {});
      throw err;
    }
  } catch (err) {
    await index?.close();
    await fsp.rm(tmp, { force: true }).catch(() => {});
    if (indexTmp) await fsp.rm(indexTmp, { force: true }).catch(() => {});
    checkInterrupted(signal);
    if (isDiskFull(err)) throw new StoreError(`no space left to store ${src} in the LFS cache`, { file: src }, err);
    throw err;
  }
}

/** Rename a complete, flushed temporary file into the cache as object `oid` (or drop it if the cache has it). */
async function moveIntoCache(gitdir: string, tmp: string, oid: string, size: number): Promise<CachedObject> {
  const path = lfsObjectPath(gitdir, oid);
  if (await pathExists(path)) {
    const st = await fsp.stat(path);
    if (st.size === size) {
      await fsp.rm(tmp, { force: true });
      return { oid, size, path, added: false };
    }
    // A truncated object from some earlier crash: replace it.
  }
  await fsp.mkdir(dirname(path), { recursive: true });
  await fsp.rename(tmp, path);
  await fsyncDir(dirname(path));
  return { oid, size, path, added: true };
}

async function syncFile(path: string): Promise<void> {
  const fh = await fsp.open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** The chunk index being written to its temporary file, hashed as it goes. */
class IndexSink {
  private fh?: FileHandle;
  private pending = '';
  private readonly hash = createHash('sha256');
  private written = 0;
  /** Past the limit: nothing more is written and finish() drops the index. */
  private overLimit = false;

  constructor(private readonly writer: ChunkIndexWriter, private readonly maxBytes: number) {}

  async open(path: string): Promise<void> {
    this.fh = await fsp.open(path, 'wx', 0o644);
  }

  async push(buf: Buffer): Promise<void> {
    this.pending += this.writer.push(buf);
    if (this.pending.length >= INDEX_FLUSH_BYTES) await this.flush();
  }

  /** The index's oid and size, once complete and flushed; undefined when over the limit. */
  async finish(oid: string, size: number): Promise<{ oid: string; size: number } | undefined> {
    this.pending += this.writer.end(oid, size);
    await this.flush();
    await this.fh!.sync();
    await this.close();
    return this.overLimit ? undefined : { oid: this.hash.digest('hex'), size: this.written };
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => {});
  }

  private async flush(): Promise<void> {
    const bytes = Buffer.from(this.pending, 'utf8');
    this.pending = '';
    if (this.overLimit) return;
    if (this.written + bytes.length > this.maxBytes) {
      this.overLimit = true;
      return;
    }
    this.hash.update(bytes);
    this.written += bytes.length;
    await this.fh!.write(bytes);
  }
}

/** Same inode, size and modification time: nobody wrote to the file in between. */
function sameFile(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}
