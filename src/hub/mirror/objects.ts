/**
 * The LFS half of the mirror: bring in the objects a commit needs that the
 * mirror does not hold yet, with the agent's own LFS client (batch API,
 * sha256 verified while streaming, resumable partials, retries), and put each
 * into the mirror's object store only once it verified. An object the
 * upstream sends wrong never lands where local agents could be served it.
 */
import { lstat, mkdir, open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ModelsyncError } from '../../errors.ts';
import { endpointFromUrl } from '../../lfs/endpoint.ts';
import { HttpFetcher } from '../../lfs/http-fetcher.ts';
import type { LfsObject } from '../../lfs/types.ts';
import type { Logger } from '../../log.ts';
import { fsyncDir } from '../../util/fsutil.ts';
import type { Upstream } from './upstream.ts';

export interface ObjectSyncResult {
  fetched: LfsObject[];
  bytes: number;
  /** The upstream does not have these (404/410 in the batch answer): no retry will bring them. */
  absent: LfsObject[];
  /** Could not be fetched now (checksum mismatch, network): retried on the next sync. */
  failed: Array<{ obj: LfsObject; error: ModelsyncError }>;
}

export class MirrorObjects {
  private readonly fetcher: HttpFetcher;

  constructor(
    private readonly o: {
      upstream: Upstream;
      /** Where an object of the mirrored repo is kept (the hub's own layout, so its LFS routes serve it). */
      objectPath: (oid: string) => string;
      /** Partial downloads (resumed by the next sync). */
      tmpDir: string;
      logger: Logger;
      concurrency?: number;
      retry?: ConstructorParameters<typeof HttpFetcher>[0]['retry'];
    },
  ) {
    this.fetcher = new HttpFetcher({
      endpoint: endpointFromUrl(o.upstream.lfsUrl, { token: o.upstream.token }),
      concurrency: o.concurrency ?? 4,
      logger: o.logger,
      userAgent: 'modelsync-mirror',
      retry: o.retry,
    });
  }

  /** Whether the mirror holds `obj` (a regular file of its size; a symlink is not an object). */
  async has(obj: LfsObject): Promise<boolean> {
    try {
      const st = await lstat(this.o.objectPath(obj.oid));
      return st.isFile() && st.size === obj.size;
    } catch {
      return false;
    }
  }

  async missing(objects: readonly LfsObject[]): Promise<LfsObject[]> {
    const out: LfsObject[] = [];
    for (const obj of objects) if (!(await this.has(obj))) out.push(obj);
    return out;
  }

  async fetch(objects: readonly LfsObject[], signal?: AbortSignal): Promise<ObjectSyncResult> {
    const result: ObjectSyncResult = { fetched: [], bytes: 0, absent: [], failed: [] };
    if (objects.length === 0) return result;
    const r = await this.fetcher.fetch(objects, {
      tmpDir: this.o.tmpDir,
      signal,
      onVerified: async (obj, path) => {
        const dest = this.o.objectPath(obj.oid);
        await mkdir(dirname(dest), { recursive: true });
        // The fetcher fsynced nothing: make the bytes durable before they become visible.
        const fh = await open(path, 'r');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(path, dest);
        await fsyncDir(dirname(dest));
      },
    });
    result.fetched = r.fetched;
    result.bytes = r.bytesTransferred;
    for (const f of r.failed) {
      if (f.error.code === 'NotFoundError') result.absent.push(f.obj);
      else result.failed.push(f);
    }
    return result;
  }
}
