/**
 * Content-addressed objects: `objects/sha256/<aa>/<bb>/<oid>`, read-only, one
 * copy per content whatever model or version uses it. Only verified files
 * enter: the fetcher hashes while streaming, and plain blobs read from git
 * are hashed here before they are written.
 */
import { promises as fsp, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ChecksumError, StoreError, isDiskFull } from '../errors.ts';
import { fsyncDir } from '../util/fsutil.ts';
import { mkdirDurable } from './durable-dirs.ts';
import { sha256Hex } from '../util/hash.ts';
import type { StoreLayout } from './layout.ts';

export interface ObjectRef {
  oid: string;
  size: number;
}

/** Turn an fs error into a StoreError that says what the store was doing; disk full is named as such. */
export function storeFsError(what: string, err: unknown, data: Record<string, unknown> = {}): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (isDiskFull(err)) return new StoreError(`${what}: disk full (${code})`, { ...data, errno: code, diskFull: true }, err);
  return new StoreError(`${what}: ${(err as Error)?.message ?? String(err)}`, { ...data, errno: code }, err);
}

export class ObjectStore {
  constructor(private readonly layout: StoreLayout) {}

  path(oid: string): string {
    return this.layout.objectPath(oid);
  }

  /** Whether the store holds this object with the expected size (stat only; content was verified on entry). */
  async has(obj: ObjectRef): Promise<boolean> {
    try {
      const st = await fsp.stat(this.path(obj.oid));
      return st.isFile() && st.size === obj.size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw storeFsError(`cannot inspect object ${obj.oid}`, err, { oid: obj.oid });
    }
  }

  /**
   * Take ownership of a verified file (same filesystem, usually under tmp/):
   * make it read-only, fsync it, rename it into place and fsync the directory.
   */
  async adopt(file: string, obj: ObjectRef): Promise<void> {
    const dest = this.path(obj.oid);
    try {
      const st = await fsp.stat(file);
      if (st.size !== obj.size) {
        throw new ChecksumError(`object ${obj.oid} has ${st.size} bytes, expected ${obj.size}`, { oid: obj.oid, expectedSize: obj.size, actualSize: st.size });
      }
      await fsp.chmod(file, 0o444);
      const fh = await fsp.open(file, constants.O_RDONLY);
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await mkdirDurable(dirname(dest));
      // rename over an existing copy is harmless: both hold the same verified bytes.
      await fsp.rename(file, dest);
      await fsyncDir(dirname(dest));
    } catch (err) {
      await fsp.rm(file, { force: true }).catch(() => {});
      if (err instanceof ChecksumError) throw err;
      throw storeFsError(`cannot store object ${obj.oid}`, err, { oid: obj.oid });
    }
  }

  /** Store content read from git (a file kept as a plain blob, not an LFS pointer), after checking its hash. */
  async writeVerified(bytes: Uint8Array, obj: ObjectRef, file?: string): Promise<void> {
    const actual = sha256Hex(bytes);
    if (actual !== obj.oid || bytes.length !== obj.size) {
      throw new ChecksumError(`checksum failed for ${file ?? obj.oid}: content hashes to sha256 ${actual} (${bytes.length} bytes), manifest says ${obj.oid} (${obj.size} bytes)`, {
        oid: obj.oid, actual, expectedSize: obj.size, actualSize: bytes.length, file,
      });
    }
    const tmp = join(this.layout.tmpDir, `blob-${obj.oid.slice(0, 16)}-${randomBytes(4).toString('hex')}`);
    try {
      await fsp.mkdir(this.layout.tmpDir, { recursive: true });
      await fsp.writeFile(tmp, bytes, { mode: 0o644, flag: 'wx' });
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw storeFsError(`cannot write object ${obj.oid}`, err, { oid: obj.oid });
    }
    await this.adopt(tmp, obj);
  }

  /** Every object file with its size and link count (nlink 1 = no version uses it). */
  async *list(): AsyncGenerator<{ oid: string; path: string; size: number; nlink: number }> {
    const root = this.layout.objectsDir;
    for (const a of await readdirOrEmpty(root)) {
      for (const b of await readdirOrEmpty(join(root, a))) {
        for (const oid of await readdirOrEmpty(join(root, a, b))) {
          const path = join(root, a, b, oid);
          const st = await fsp.lstat(path).catch(() => null);
          if (st?.isFile()) yield { oid, path, size: st.size, nlink: st.nlink };
        }
      }
    }
  }
}

export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw err;
  }
}
