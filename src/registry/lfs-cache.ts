/**
 * The git-lfs local object cache of a repository (`<gitdir>/lfs/objects/aa/bb/<oid>`),
 * filled the way git-lfs fills it, so stock `git lfs push`, `git lfs fsck`
 * and `git lfs checkout` work on what publish stored.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp, type Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StoreError, UsageError, isDiskFull } from '../errors.ts';
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
 * the copy and removes the temporary file.
 */
export async function addToLfsCache(gitdir: string, src: string, signal?: AbortSignal): Promise<CachedObject> {
  const tmpDir = join(gitdir, 'lfs', 'tmp');
  await fsp.mkdir(tmpDir, { recursive: true });
  const tmp = tempSibling(join(tmpDir, 'publish'));
  const hash = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    const before = await fsp.stat(src);
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), tap, out, { signal });
    const after = await fsp.stat(src);
    if (!sameFile(before, after) || after.size !== size) {
      throw new UsageError(`${src} changed while it was being read (${before.size} -> ${after.size} bytes); publish it once it is complete`, { file: src });
    }
    const fh = await fsp.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const oid = hash.digest('hex');
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
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    checkInterrupted(signal);
    if (isDiskFull(err)) throw new StoreError(`no space left to store ${src} in the LFS cache`, { file: src }, err);
    throw err;
  }
}

/** Same inode, size and modification time: nobody wrote to the file in between. */
function sameFile(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}
