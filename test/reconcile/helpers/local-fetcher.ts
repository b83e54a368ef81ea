/**
 * A tiny ObjectFetcher for tests on local-path registries: copies objects
 * from the repository's git-lfs cache (`<gitdir>/lfs/objects/aa/bb/<oid>`),
 * hashing while copying, like the real client does over HTTP.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { ChecksumError, NotFoundError, type ModelsyncError } from '../../../src/errors.ts';
import type { FetchOptions, FetchResult, LfsObject, ObjectFetcher } from '../../../src/lfs/types.ts';
import type { FetcherFactory } from '../../../src/reconcile/fetcher.ts';

export class LocalCacheFetcher implements ObjectFetcher {
  readonly description: string;
  /** Objects handed over, for assertions ("fetched only what was missing"). */
  readonly delivered: string[] = [];
  constructor(private readonly gitdir: string) {
    this.description = `${gitdir}/lfs/objects`;
  }

  async fetch(objects: readonly LfsObject[], options: FetchOptions): Promise<FetchResult> {
    await fsp.mkdir(options.tmpDir, { recursive: true });
    const result: FetchResult = { fetched: [], bytesTransferred: 0, failed: [] };
    for (const obj of objects) {
      const src = join(this.gitdir, 'lfs', 'objects', obj.oid.slice(0, 2), obj.oid.slice(2, 4), obj.oid);
      const part = join(options.tmpDir, `${obj.oid}.part`);
      try {
        await fsp.stat(src).catch(() => {
          throw new NotFoundError(`object ${obj.oid} is not in ${this.description}`, { oid: obj.oid });
        });
        const hash = createHash('sha256');
        let size = 0;
        const tap = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            size += chunk.length;
            options.onProgress?.({ oid: obj.oid, bytes: size, size: obj.size });
            cb(null, chunk);
          },
        });
        await pipeline(createReadStream(src), tap, createWriteStream(part));
        const actual = hash.digest('hex');
        if (actual !== obj.oid || size !== obj.size) {
          await fsp.rm(part, { force: true });
          throw new ChecksumError(`checksum failed for object ${obj.oid}: received bytes hash to ${actual}`, { oid: obj.oid, actual, expectedSize: obj.size, actualSize: size });
        }
        result.bytesTransferred += size;
        await options.onVerified(obj, part);
        this.delivered.push(obj.oid);
        result.fetched.push(obj);
      } catch (err) {
        result.failed.push({ obj, error: err as ModelsyncError });
      }
    }
    return result;
  }
}

/** A factory that builds LocalCacheFetchers from the registry location a pass passes in. */
export function localFetcherFactory(seen?: LocalCacheFetcher[]): FetcherFactory {
  return (req) => {
    if (!req.gitdir) throw new Error('local fetcher needs a gitdir');
    const f = new LocalCacheFetcher(req.gitdir);
    seen?.push(f);
    return f;
  };
}
