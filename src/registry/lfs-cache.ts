/**
 * The git-lfs local object cache of a repository (`<gitdir>/lfs/objects/aa/bb/<oid>`),
 * filled the way git-lfs fills it, so stock `git lfs push`, `git lfs fsck`
 * and `git lfs checkout` work on what publish stored.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StoreError, isDiskFull } from '../errors.ts';
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
 * flushed, so the cache never holds a partial object.
 */
export async function addToLfsCache(gitdir: string, src: string): Promise<CachedObject> {
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
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
    await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), tap, out);
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
    if (isDiskFull(err)) throw new StoreError(`no space left to store ${src} in the LFS cache`, { file: src }, err);
    throw err;
  }
}
