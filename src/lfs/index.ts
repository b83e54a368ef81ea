/**
 * modelsync's own streaming Git LFS client. Existing npm clients buffer whole
 * objects in memory and skip verification; this one streams to disk with
 * backpressure, verifies sha256 on the way, resumes, retries and caps
 * bandwidth. See docs/lfs.md.
 *
 *   const fetcher = createFetcher({ remote: 'https://hub/registry.git', lfsconfig, token });
 *   await fetcher.fetch(objects, { tmpDir, onVerified });
 */
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../errors.ts';
import { discoverEndpoint, isUrlLike } from './endpoint.ts';
import { HttpFetcher } from './http-fetcher.ts';
import { LocalFetcher, readGitConfig, resolveGitDir } from './local.ts';
import { GitConfig } from './gitconfig.ts';
import type { TransferOptions } from './transfer.ts';
import type { ObjectFetcher } from './types.ts';

export type { DeltaHints, FetchOptions, FetchProgress, FetchResult, LfsObject, ObjectFetcher } from './types.ts';
export { buildChunkIndex, chunkFile, parseChunkIndex, serializeChunkIndex, type ChunkIndex } from './cdc.ts';
export { discoverEndpoint, endpointFromUrl, LfsEndpoint, type DiscoverOptions } from './endpoint.ts';
export { HttpFetcher } from './http-fetcher.ts';
export { closeFetcher, LocalFetcher, resolveGitDir } from './local.ts';
export { uploadObjects, type UploadObject, type UploadOptions, type UploadResult } from './upload.ts';

export interface CreateFetcherOptions extends TransferOptions {
  /** The registry: an http(s)/ssh URL, or a local path (checkout or bare repo, or file:// URL). */
  remote: string;
  /**
   * A local git directory whose git-lfs cache is tried first (and whose
   * config may set lfs.url). Defaults to the repository itself for a local remote.
   */
  gitdir?: string;
  /** Text of `.lfsconfig` at the registry commit being applied. */
  lfsconfig?: string;
  /** Token for the registry's origin (HTTP Basic password). */
  token?: string;
  /** Objects below this size skip chunk deltas (default 4 MiB). */
  deltaMinBytes?: number;
}

/** The fetcher for a registry: its local git-lfs cache when there is one, then its LFS server. */
export function createFetcher(opts: CreateFetcherOptions): ObjectFetcher {
  // Everything but where and who is transfer tuning, passed on as is.
  const { remote: given, gitdir: _gitdir, lfsconfig: _lfsconfig, token: _token, ...httpOpts } = opts;
  const remote = /^file:\/\//i.test(given) ? fileURLToPath(given) : given;

  if (isUrlLike(remote)) {
    const gitConfig = opts.gitdir ? readGitConfig(opts.gitdir) : undefined;
    const endpoint = discoverEndpoint({ remote, lfsconfig: opts.lfsconfig, gitConfig, token: opts.token });
    const http = new HttpFetcher({ endpoint, ...httpOpts });
    return opts.gitdir ? new LocalFetcher({ gitdir: opts.gitdir, fallback: http, logger: opts.logger }) : http;
  }

  // A local repository: its cache first, then the LFS server its config or .lfsconfig names, if any.
  const gitdir = opts.gitdir ?? resolveGitDir(remote);
  const configText = readGitConfig(gitdir);
  const config = configText ? GitConfig.parse(configText) : new GitConfig();
  const origin = config.get('remote.origin.url');
  let fallback: HttpFetcher | undefined;
  try {
    const endpoint = discoverEndpoint({
      remote: origin && isUrlLike(origin) ? origin : undefined,
      lfsconfig: opts.lfsconfig,
      gitConfig: config,
      token: opts.token,
    });
    fallback = new HttpFetcher({ endpoint, ...httpOpts });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // No LFS server known: the local cache is all there is.
    opts.logger?.debug({ gitdir }, 'local registry without an LFS server; objects must be in its git-lfs cache');
  }
  return new LocalFetcher({ gitdir, fallback, logger: opts.logger });
}
