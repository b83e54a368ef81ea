/**
 * Where a pass reads the registry from, and at which commit.
 *
 * - A remote (http/https): a shallow, single-branch clone kept in
 *   `<store>/registry.git` and fetched incrementally each pass with
 *   isomorphic-git: the first fetch at depth 1, later ones for the commits
 *   since the cached tip (registry-cache.ts). A force-pushed branch is just a
 *   new tip to fetch; a cache that git cannot update is thrown away and
 *   cloned again.
 * - A local path (a checkout or a bare repository): read directly at the
 *   branch's commit; nothing is copied.
 *
 * Credentials never enter the clone's config, a log line, an error or the
 * state file: the token is handed to isomorphic-git through onAuth and the
 * request headers only, and the URL kept in the clone's config has no user
 * info and no query values (some hosts take `?private_token=` in the URL).
 *
 * The HTTP Basic user name is the user's: from the URL (`https://user:tok@host`,
 * or `https://user@host` with the token given apart) or `username` in
 * agent.yaml. GitLab deploy tokens and Bitbucket app passwords check it.
 */
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import git, { type HttpClient } from 'isomorphic-git';
import { GitError, ModelsyncError, NotFoundError, StoreError, UsageError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { CommitSource, findGitDir } from '../registry/source.ts';
import { redactUrl } from '../util/redact.ts';
import { describeFreeSpace } from '../util/fsutil.ts';
import { boundedHttpClient } from './git-http.ts';
import { ensureCache, fetchShallow, fetchUpdate, type GitAuth, gitNetworkError, hasCommit, localRef } from './registry-cache.ts';
import { advertisedBranches } from './ref-advertisement.ts';

/** Default for how long the registry server may stay silent mid-request. */
export const DEFAULT_NETWORK_TIMEOUT_MS = 60_000;

export interface RegistryLocation {
  /** `https://hub/registry.git`, a path, or a file:// URL. */
  registry: string;
  branch: string;
  token?: string;
  /** HTTP Basic user name for the registry's origin (default: the URL's, else `modelsync`). */
  username?: string;
  /** How long the server may stay silent mid-request (default 60 s). */
  timeoutMs?: number;
  /**
   * The branch's new tip as a hub event announced it. Only a hint: when the
   * cache lacks it, the branch is fetched at once (saving the ref listing,
   * one round trip and one git process on the server); whatever the fetch
   * brings is what the pass uses.
   */
  expectedCommit?: string;
}

export interface LfsLocation {
  /** Remote URL without a password (it may carry the Basic user name), or the local repository path. */
  remote: string;
  /** The local repository's git dir (its `lfs/objects` cache), for local registries. */
  gitdir?: string;
  /** Text of `.lfsconfig` at the commit, when the registry has one. */
  lfsconfig?: string;
  /** The token for the registry's origin (given, or taken out of the URL); never logged or stored. */
  token?: string;
}

export interface OpenedRegistry {
  source: CommitSource;
  commit: string;
  /** The git directory the commit is read from (the kept clone, or the local repository's). */
  gitdir: string;
  /** For messages and state.json: the URL without credentials, or the path. */
  description: string;
  remote: boolean;
  lfs: LfsLocation;
  /** Whether Git objects were transferred this time (false when the tip was already local). */
  transferred: boolean;
  /** A remote's shallow clone: fetch the branch's history to this depth (commit verification needs it). */
  deepen?: (depth: number) => Promise<boolean>;
}

export function isRemoteRegistry(registry: string): boolean {
  return /^https?:\/\//i.test(registry);
}

/**
 * Split credentials out of a URL (`https://user:tok@host/x`): the URL for
 * git, the password as the token and the user as the Basic user name. A lone
 * user (`https://x@host`) is the user name when a token is given apart, and
 * the token itself otherwise (`https://<token>@host`, as many hosts document).
 */
export function splitCredentials(url: string, givenToken?: string): { url: string; token?: string; username?: string } {
  const u = new URL(url);
  const user = u.username ? safeDecode(u.username) : undefined;
  let token: string | undefined;
  let username: string | undefined;
  if (u.password) {
    token = safeDecode(u.password);
    username = user;
  } else if (user !== undefined) {
    if (givenToken !== undefined) username = user;
    else token = user;
  }
  u.username = '';
  u.password = '';
  return { url: u.toString().replace(/\/$/, ''), token, username };
}

function withUser(url: string, username: string | undefined): string {
  if (username === undefined) return url;
  const u = new URL(url);
  u.username = encodeURIComponent(username);
  return u.toString().replace(/\/$/, '');
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Refuse registry locations agents cannot use (ssh, other schemes) before anything runs. */
export function checkRegistryLocation(registry: string): void {
  if (isRemoteRegistry(registry)) return;
  const scpLike = /^[\w.-]+@[\w.-]+:/.test(registry);
  if (scpLike || (/^[a-z][a-z0-9+.-]*:\/\//i.test(registry) && !registry.startsWith('file://'))) {
    throw new UsageError(`registry ${scpLike ? registry.replace(/:.*/, ':…') : redactUrl(registry)}: only http(s) URLs and local paths are supported (agents speak Git smart HTTP and the LFS HTTP API)`);
  }
}

export async function openRegistry(loc: RegistryLocation, opts: { cacheDir: string; logger: Logger }): Promise<OpenedRegistry> {
  checkRegistryLocation(loc.registry);
  if (isRemoteRegistry(loc.registry)) return openRemote(loc, opts);
  return openLocal(loc);
}

async function lfsconfigAt(source: CommitSource): Promise<string | undefined> {
  return (await source.readText('.lfsconfig')) ?? undefined;
}

async function openLocal(loc: RegistryLocation): Promise<OpenedRegistry> {
  const path = loc.registry.startsWith('file://') ? fileURLToPath(loc.registry) : resolve(loc.registry);
  const gitLoc = await findGitDir(path);
  let source: CommitSource;
  try {
    source = await CommitSource.open(gitLoc, `refs/heads/${loc.branch}`);
  } catch (err) {
    if (err instanceof NotFoundError) throw new NotFoundError(`branch ${JSON.stringify(loc.branch)} does not exist in ${path}`, { registry: path, branch: loc.branch });
    throw err;
  }
  return {
    source,
    commit: source.commit,
    gitdir: gitLoc.gitdir,
    description: path,
    remote: false,
    lfs: { remote: path, gitdir: gitLoc.gitdir, lfsconfig: await lfsconfigAt(source), token: loc.token },
    transferred: false,
  };
}

async function openRemote(loc: RegistryLocation, opts: { cacheDir: string; logger: Logger }): Promise<OpenedRegistry> {
  const { url: given, token: urlToken, username: urlUser } = splitCredentials(loc.registry, loc.token);
  const token = loc.token ?? urlToken;
  const username = loc.username ?? urlUser;
  const gitdir = opts.cacheDir;
  const ref = `refs/remotes/origin/${loc.branch}`;
  // A query (a token some hosts take in the URL) rides on each request, never in the URL git builds on.
  const parsed = new URL(given);
  const query = new URLSearchParams(parsed.search);
  parsed.search = '';
  const url = parsed.toString().replace(/\/$/, '');
  const http = boundedHttpClient(loc.timeoutMs ?? DEFAULT_NETWORK_TIMEOUT_MS, { query: { origin: parsed.origin, params: query } });
  const user = username ?? 'modelsync';
  // Answer only the first challenge: a refused token must not loop.
  let asked = 0;
  const auth = {
    onAuth: () => (token !== undefined && asked++ === 0 ? { username: user, password: token } : { cancel: true }),
    // Sent up front, as git does once it knows a server wants credentials: otherwise every
    // request of every pass pays a 401 round trip first (two per pass on a WAN link).
    // The HTTP client drops it on a redirect to another origin.
    headers: token !== undefined ? { authorization: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}` } : undefined,
  };
  const mapError = async (err: unknown): Promise<ModelsyncError> => {
    const mapped = gitNetworkError(err, url, 'cannot fetch the registry from', token !== undefined);
    if (mapped instanceof StoreError && mapped.data.diskFull) mapped.message += `; ${await describeFreeSpace(gitdir)}`;
    return mapped;
  };
  const opened = (commit: string, transferred: boolean) => openedRemote(gitdir, commit, url, withUser(url, username), token, transferred);

  // The clone is shallow (depth 1): verifying every commit since the last applied one may need more.
  const deepen = async (depth: number): Promise<boolean> => {
    asked = 0;
    try {
      await fetchShallow(gitdir, url, loc.branch, auth, http, depth);
    } catch (err) {
      throw await mapError(err);
    }
    return true;
  };

  try {
    await ensureCache(gitdir, given);
  } catch (err) {
    throw await mapError(err);
  }
  if (loc.expectedCommit && /^[0-9a-f]{40}$/.test(loc.expectedCommit) && !(await hasCommit(gitdir, loc.expectedCommit))) {
    try {
      await fetchUpdate(gitdir, url, loc.branch, auth, http, opts.logger, () => (asked = 0));
      const fetched = await localRef(gitdir, ref);
      if (fetched) return { ...(await opened(fetched, true)), deepen };
    } catch (err) {
      // The hint led nowhere (a deleted branch, a flaky server): the usual path decides, with its own errors.
      opts.logger.debug({ err: errorMessage(err) }, 'fetch of the announced commit failed; listing refs first');
    }
    asked = 0;
  }
  let tip: string | undefined;
  try {
    const refs = await git.listServerRefs({ http, url, prefix: `refs/heads/${loc.branch}`, protocolVersion: 1, ...auth });
    tip = refs.find((r) => r.ref === `refs/heads/${loc.branch}`)?.oid;
  } catch (err) {
    throw await mapError(err);
  }
  if (!tip) throw await missingBranch(loc.branch, url, http, auth);

  let transferred = false;
  if (!(await hasCommit(gitdir, tip)) || (await localRef(gitdir, ref)) !== tip) {
    asked = 0;
    try {
      await fetchUpdate(gitdir, url, loc.branch, auth, http, opts.logger, () => (asked = 0));
    } catch (err) {
      const mapped = await mapError(err);
      if (mapped instanceof GitError) {
        // The cache is in a state git cannot update (interrupted write, odd history): start it over.
        opts.logger.warn({ err: mapped.message }, 'registry cache unusable; cloning again');
        await fsp.rm(gitdir, { recursive: true, force: true });
        asked = 0;
        try {
          await ensureCache(gitdir, given);
          await fetchShallow(gitdir, url, loc.branch, auth, http);
        } catch (err2) {
          throw await mapError(err2);
        }
      } else {
        throw mapped;
      }
    }
    transferred = true;
  }
  const commit = await localRef(gitdir, ref);
  if (!commit) throw new GitError(`fetched ${redactUrl(url)} but ${ref} is missing from the cache`, { url: redactUrl(url) });
  return { ...(await opened(commit, transferred)), deepen };
}

/** The configured branch is not on the server: say which branches are (a `master`/`main` mix-up is common). */
async function missingBranch(branch: string, url: string, http: HttpClient, auth: GitAuth): Promise<NotFoundError> {
  let branches: string[] | undefined;
  try {
    branches = advertisedBranches(await git.listServerRefs({ http, url, prefix: 'refs/heads/', protocolVersion: 1, onAuth: auth.onAuth as never, headers: auth.headers }));
  } catch {
    // Only for the message.
  }
  const shown = redactUrl(url);
  const list = branches === undefined ? '' : branches.length === 0 ? '; the repository has no branches (nothing pushed yet?)' : `; it has ${branches.length === 1 ? 'branch' : 'branches'} ${branches.slice(0, 10).map((b) => JSON.stringify(b)).join(', ')}${branches.length > 10 ? ` and ${branches.length - 10} more` : ''} (set branch in agent.yaml or --branch)`;
  return new NotFoundError(`branch ${JSON.stringify(branch)} does not exist in ${shown}${list}`, { url: shown, branch, ...(branches ? { branches: branches.slice(0, 50) } : {}) });
}

async function openedRemote(gitdir: string, commit: string, url: string, lfsRemote: string, token: string | undefined, transferred: boolean): Promise<OpenedRegistry> {
  const source = await CommitSource.open({ gitdir }, commit);
  return {
    source,
    commit,
    gitdir,
    description: redactUrl(url),
    remote: true,
    lfs: { remote: lfsRemote, lfsconfig: await lfsconfigAt(source), token },
    transferred,
  };
}
