/**
 * How a pass gets its ObjectFetcher: by default the LFS client of src/lfs
 * (HTTP batch API for remote registries, the local git-lfs cache for local
 * ones); tests and embedders may pass their own.
 */
import { createFetcher, type CreateFetcherOptions } from '../lfs/index.ts';
import type { ObjectFetcher } from '../lfs/types.ts';

/** What a pass tells the factory: where the registry is, who it is, and the site's transfer limits. */
export type FetcherRequest = CreateFetcherOptions;

export type FetcherFactory = (req: FetcherRequest) => ObjectFetcher | Promise<ObjectFetcher>;

export const defaultFetcherFactory: FetcherFactory = (req) => createFetcher(req);
