/**
 * Kept chunk indexes: `objects/chunks/<aa>/<oid>`, the chunk index of an
 * object this site holds (the LFS object a manifest's `files[].chunks` names,
 * verified against its oid when it was downloaded), filed under the oid of
 * the file it describes.
 *
 * With it, the next upgrade of that file knows where each of its chunks lies
 * without reading and hashing the file again: matching is a table lookup.
 * A kept index is a hint, never a source of truth. The new object is still
 * verified whole against its sha256, and a local chunk whose bytes do not hash
 * to what the kept index says is fetched instead; so a kept index is written
 * without fsync, and one lost or torn in a crash costs a re-read of the old
 * file, never a bad object.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tempSibling } from '../util/fsutil.ts';
import type { StoreLayout } from './layout.ts';
import { readdirOrEmpty, storeFsError } from './objects.ts';

export class KeptChunkIndexes {
  constructor(private readonly layout: StoreLayout) {}

  path(oid: string): string {
    // objectPath checks the oid is a sha256: nothing else names a file here.
    this.layout.objectPath(oid);
    return join(this.layout.chunkIndexesDir, oid.slice(0, 2), oid);
  }

  /** The kept index of object `oid`, or undefined when there is none (or it is larger than `maxBytes`). */
  async read(oid: string, maxBytes: number): Promise<Buffer | undefined> {
    const path = this.path(oid);
    try {
      const st = await fsp.stat(path);
      if (!st.isFile() || st.size > maxBytes) return undefined;
      return await fsp.readFile(path);
    } catch {
      return undefined;
    }
  }

  /** Keep `bytes` as the chunk index of object `oid` (replacing any earlier one, atomically). */
  async keep(oid: string, bytes: Uint8Array): Promise<void> {
    const path = this.path(oid);
    const tmp = tempSibling(path);
    try {
      await fsp.mkdir(join(this.layout.chunkIndexesDir, oid.slice(0, 2)), { recursive: true });
      await fsp.writeFile(tmp, bytes, { mode: 0o444 });
      await fsp.rename(tmp, path);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw storeFsError(`cannot keep the chunk index of ${oid}`, err, { oid });
    }
  }

  async remove(oid: string): Promise<void> {
    await fsp.rm(this.path(oid), { force: true });
  }

  /** Remove kept indexes (and stray temp files) whose object the store no longer holds; returns how many. */
  async sweep(holds: (oid: string) => Promise<boolean>): Promise<number> {
    let removed = 0;
    const root = this.layout.chunkIndexesDir;
    for (const a of await readdirOrEmpty(root)) {
      for (const name of await readdirOrEmpty(join(root, a))) {
        if (/^[0-9a-f]{64}$/.test(name) && (await holds(name))) continue;
        await fsp.rm(join(root, a, name), { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }
}
