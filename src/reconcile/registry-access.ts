/**
 * Where a pass reads the registry from, and at which commit.
 *
 * - A remote (http/https): a shallow, single-branch clone kept in
 *   `<store>/registry.git` and fetched incrementally each pass with
 *   isomorphic-git: the first fetch at depth 1, later ones for the commits
 *   since the cached tip (see fetchUpdate). A force-pushed branch is just a
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
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import git, { type HttpClient } from 'isomorphic-git';
import { AuthError, GitError, ModelsyncError, NetworkError, NotFoundError, StoreError, UsageError, errorMessage, isDiskFull } from '../errors.ts';
import type { Logger } from '../log.ts';
import { CommitSource, findGitDir } from '../registry/source.ts';
import { redactUrl } from '../util/redact.ts';
import { describeFreeSpace } from '../util/fsutil.ts';
import { boundedHttpClient } from './git-http.ts';
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

/** What the registry cache's `.git/config` may hold of a URL: no user info, query keys without their values. */
export function persistableUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  for (const key of [...new Set(u.searchParams.keys())]) u.searchParams.set(key, '');
  return u.toString().replace(/\/$/, '');
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

/** Map isomorphic-git and socket errors to our typed errors, with the URL (no credentials) in the message. */
export function gitNetworkError(err: unknown, url: string, what: string, hasToken?: boolean): ModelsyncError {
  if (err instanceof ModelsyncError) return err;
  const e = err as { code?: string; data?: { statusCode?: number; statusMessage?: string }; message?: string };
  const shown = redactUrl(url);
  if (e.code === 'HttpError' && e.data?.statusCode !== undefined) {
    const status = e.data.statusCode;
    if (status === 401 || status === 403) {
      return new AuthError(`${what} ${shown}: the server refused our credentials (HTTP ${status}); check --token-file or MODELSYNC_TOKEN`, { url: shown, status });
    }
    if (status === 404) return new NotFoundError(`${what} ${shown}: no such repository (HTTP 404)`, { url: shown, status });
    return new NetworkError(`${what} ${shown}: HTTP ${status} ${e.data.statusMessage ?? ''}`.trim(), { url: shown, status }, err);
  }
  if (e.code === 'UserCanceledError') {
    // We cancel the second challenge: with a token it was refused, without one none was given.
    const why = hasToken === false
      ? 'the server needs credentials and no token was given (--token-file or token_file in agent.yaml, MODELSYNC_TOKEN_FILE, MODELSYNC_TOKEN, or credentials in the registry URL)'
      : hasToken
        ? 'the server refused our credentials (HTTP 401); check --token-file or MODELSYNC_TOKEN'
        : 'the server asks for credentials and none were accepted';
    return new AuthError(`${what} ${shown}: ${why}`, { url: shown });
  }
  const sys = (err as NodeJS.ErrnoException).code;
  if (isDiskFull(err)) {
    // Writing the fetched pack into the registry cache, not the network.
    return new StoreError(`${what} ${shown}: disk full while writing the registry cache (${sys})`, { url: shown, errno: sys, diskFull: true }, err);
  }
  if (sys === 'ETIMEDOUT' && err instanceof Error) {
    return new NetworkError(`${what} ${shown}: ${err.message}`, { url: shown, errno: sys }, err);
  }
  if (sys && /^E[A-Z]+$/.test(sys)) {
    return new NetworkError(`${what} ${shown}: cannot reach the server (${sys})`, { url: shown, errno: sys }, err);
  }
  if (e.code === 'SmartHttpError') return new NetworkError(`${what} ${shown}: not a Git smart-HTTP server`, { url: shown }, err);
  return new GitError(`${what} ${shown}: ${scrub(errorMessage(err), url)}`, { url: shown }, err);
}

function scrub(message: string, url: string): string {
  return message.split(url).join(redactUrl(url));
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
async function missingBranch(branch: string, url: string, http: HttpClient, auth: { onAuth: () => unknown; headers?: Record<string, string> }): Promise<NotFoundError> {
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

type GitAuth = { onAuth: () => unknown; headers?: Record<string, string> };

/**
 * Bring the cache's branch to the server's tip. With a tip already cached, ask
 * for the commits since it (deepen-since its committer time): the server then
 * sends what changed since, where a depth-1 fetch sends the new commit's whole
 * tree again, every manifest and pointer of every model (34 objects for a
 * one-manifest change in a two-version registry, 13 this way; isomorphic-git
 * indexes each one in JS). Anything short of a complete new tip takes the
 * depth-1 fetch: a server without deepen-since refuses it, and a tip older
 * than ours (a branch force-pushed back in time) comes back as no objects at
 * all, the ref moved to a commit the cache lacks. Only errors of the network,
 * credentials or disk are the caller's; they would fail the second fetch too.
 *
 * The price: a site that comes back after weeks offline, or a registry whose
 * history was rewritten, gets every commit since (their changed objects),
 * where depth 1 would send one tree. That is a one-time catch-up, bounded by
 * the history, and `verify: mode: every` needs those commits anyway.
 */
async function fetchUpdate(gitdir: string, url: string, branch: string, auth: GitAuth, http: HttpClient, logger: Logger, beforeRetry: () => void): Promise<void> {
  const ref = `refs/remotes/origin/${branch}`;
  const ours = await localRef(gitdir, ref);
  const since = ours ? await committerTime(gitdir, ours) : undefined;
  if (since !== undefined) {
    try {
      await git.fetch({ ...fetchArgs(gitdir, url, branch, auth, http), since: new Date(since * 1000) });
      const tip = await localRef(gitdir, ref);
      if (tip && (await hasTree(gitdir, tip))) return;
      logger.debug({ tip }, 'the fetch since the cached tip left the new tip incomplete; fetching it at depth 1');
    } catch (err) {
      // Unreachable, refused credentials or a full disk would fail the depth-1 fetch too (a timeout
      // would be waited out twice). Whatever the server answered to this request (an HTTP error,
      // git's "no commits selected for shallow requests" through a front end) gets the depth-1 fetch.
      const mapped = gitNetworkError(err, url, 'cannot fetch the registry from');
      if (mapped instanceof AuthError || mapped instanceof StoreError || (mapped instanceof NetworkError && mapped.data.errno !== undefined)) throw err;
      logger.debug({ err: errorMessage(err) }, 'the fetch since the cached tip failed; fetching at depth 1');
    }
    beforeRetry();
  }
  await fetchShallow(gitdir, url, branch, auth, http);
}

function fetchArgs(gitdir: string, url: string, branch: string, auth: GitAuth, http: HttpClient) {
  return {
    fs,
    http,
    gitdir,
    // The real URL (it may carry a query the server needs) goes to the request only; config holds persistableUrl.
    url,
    remote: 'origin',
    ref: branch,
    remoteRef: branch,
    singleBranch: true,
    tags: false,
    onAuth: auth.onAuth as never,
    headers: auth.headers,
  };
}

async function fetchShallow(gitdir: string, url: string, branch: string, auth: GitAuth, http: HttpClient, depth = 1): Promise<void> {
  await git.fetch({ ...fetchArgs(gitdir, url, branch, auth, http), depth });
}

async function ensureCache(gitdir: string, fullUrl: string): Promise<void> {
  const url = persistableUrl(fullUrl);
  const fresh = !(await fsp.stat(`${gitdir}/HEAD`).then(() => true, () => false));
  if (fresh) {
    await fsp.rm(gitdir, { recursive: true, force: true });
    await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' });
  } else if ((await packCount(gitdir)) > 64) {
    // Each incremental fetch adds a pack; past a point a fresh shallow clone is smaller and faster.
    await fsp.rm(gitdir, { recursive: true, force: true });
    await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' });
  }
  const current = await git.getConfig({ fs, gitdir, path: 'remote.origin.url' }).catch(() => undefined);
  if (current !== undefined && current !== url) {
    // The site now follows another registry: its shallow history means nothing there.
    await fsp.rm(gitdir, { recursive: true, force: true });
    await git.init({ fs, gitdir, bare: true, defaultBranch: 'main' });
  }
  if (current !== url) await git.addRemote({ fs, gitdir, remote: 'origin', url, force: true });
}

async function packCount(gitdir: string): Promise<number> {
  const names = await fsp.readdir(`${gitdir}/objects/pack`).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.pack')).length;
}

async function committerTime(gitdir: string, oid: string): Promise<number | undefined> {
  try {
    return (await git.readCommit({ fs, gitdir, oid })).commit.committer.timestamp;
  } catch {
    return undefined;
  }
}

/** The commit and its root tree are in the cache (a fetch that sent the commit sent its tree). */
async function hasTree(gitdir: string, oid: string): Promise<boolean> {
  try {
    const { commit } = await git.readCommit({ fs, gitdir, oid });
    await git.readTree({ fs, gitdir, oid: commit.tree });
    return true;
  } catch {
    return false;
  }
}

async function hasCommit(gitdir: string, oid: string): Promise<boolean> {
  try {
    await git.readCommit({ fs, gitdir, oid });
    return true;
  } catch {
    return false;
  }
}

async function localRef(gitdir: string, ref: string): Promise<string | undefined> {
  try {
    return await git.resolveRef({ fs, gitdir, ref });
  } catch {
    return undefined;
  }
}
