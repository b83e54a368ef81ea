import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/env.ts';
import type { FetchOptions, FetchProgress, FetchResult, LfsObject, ObjectFetcher } from '../../src/lfs/types.ts';

/** Random bytes of `size`, deterministic enough for tests. */
export function blob(size: number): Buffer {
  return randomBytes(size);
}

export function oidOf(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface FetchRun {
  result: FetchResult;
  tmpDir: string;
  /** What onVerified received, by oid: the sha256 of the file it was handed, computed here. */
  verified: Map<string, string>;
  progress: FetchProgress[];
}

/** Fetch into a fresh tmpDir; onVerified reads the handed file (checking it exists) and removes it, as a store would move it. */
export async function runFetch(fetcher: ObjectFetcher, objects: readonly LfsObject[], extra: Partial<FetchOptions> & { tmpDir?: string } = {}): Promise<FetchRun> {
  const tmpDir = extra.tmpDir ?? join(tempDir('lfs-fetch-'), 'tmp');
  const verified = new Map<string, string>();
  const progress: FetchProgress[] = [];
  const result = await fetcher.fetch(objects, {
    tmpDir,
    onProgress: (p) => progress.push(p),
    ...extra,
    async onVerified(obj, path) {
      if (!existsSync(path)) throw new Error(`onVerified got a missing file ${path}`);
      verified.set(obj.oid, oidOf(await fsp.readFile(path)));
      await fsp.rm(path);
    },
  });
  return { result, tmpDir, verified, progress };
}

/** Retry delays short enough for tests, still exercising the backoff path. */
export const FAST_RETRY = { retries: 4, baseDelayMs: 5, maxDelayMs: 20 };
