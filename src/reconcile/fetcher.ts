/**
 * How a pass gets its ObjectFetcher: by default the LFS client of src/lfs
 * (HTTP batch API for remote registries, the local git-lfs cache for local
 * ones); tests and embedders may pass their own.
 */
import { createFetcher } from '../lfs/index.ts';
import type { Logger } from '../log.ts';
import type { ObjectFetcher } from '../lfs/types.ts';

export interface FetcherRequest {
  /** Remote URL (no credentials) or local repository path. */
  remote: string;
  gitdir?: string;
  /** Text of `.lfsconfig` at the commit. */
  lfsconfig?: string;
  token?: string;
  concurrency?: number;
  limitKbps?: number;
  /** Idle timeout per request in ms. */
  timeoutMs?: number;
  logger?: Logger;
}

export type FetcherFactory = (req: FetcherRequest) => ObjectFetcher | Promise<ObjectFetcher>;

export const defaultFetcherFactory: FetcherFactory = (req) => createFetcher(req);
