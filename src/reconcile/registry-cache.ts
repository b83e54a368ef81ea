/**
 * The registry clone a site keeps in `<store>/registry.git`: created with
 * isomorphic-git, fetched at depth 1 the first time and then for the commits
 * since its tip, looked into (refs, commits) without a checkout; and the
 * mapping of what git and the network throw to our typed errors.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import git, { type HttpClient } from 'isomorphic-git';
import { AuthError, GitError, ModelsyncError, NetworkError, NotFoundError, StoreError, errorMessage, isDiskFull } from '../errors.ts';
import type { Logger } from '../log.ts';
import { redactUrl } from '../util/redact.ts';

/** What the registry cache's `.git/config` may hold of a URL: no user info, query keys without their values. */
function persistableUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  for (const key of [...new Set(u.searchParams.keys())]) u.searchParams.set(key, '');
  return u.toString().replace(/\/$/, '');
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

export type GitAuth = { onAuth: () => unknown; headers?: Record<string, string> };

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
export async function fetchUpdate(gitdir: string, url: string, branch: string, auth: GitAuth, http: HttpClient, logger: Logger, beforeRetry: () => void): Promise<void> {
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

export async function fetchShallow(gitdir: string, url: string, branch: string, auth: GitAuth, http: HttpClient, depth = 1): Promise<void> {
  await git.fetch({ ...fetchArgs(gitdir, url, branch, auth, http), depth });
}

export async function ensureCache(gitdir: string, fullUrl: string): Promise<void> {
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

export async function hasCommit(gitdir: string, oid: string): Promise<boolean> {
  try {
    await git.readCommit({ fs, gitdir, oid });
    return true;
  } catch {
    return false;
  }
}

export async function localRef(gitdir: string, ref: string): Promise<string | undefined> {
  try {
    return await git.resolveRef({ fs, gitdir, ref });
  } catch {
    return undefined;
  }
}
