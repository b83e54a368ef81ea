/**
 * `--push` for publish, promote and rollback: upload the LFS objects the new
 * commits need, then push the branch, both with our own code (isomorphic-git
 * and src/lfs), so it works without git or git-lfs installed. Objects go
 * first, as `git lfs pre-push` does: a ref must never reach the server
 * before the files it names.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';
import { AuthError, GitError, ModelsyncError, UsageError, errorMessage } from '../errors.ts';
import { discoverEndpoint, uploadObjects, type UploadObject } from '../lfs/index.ts';
import { silentLogger, type Logger } from '../log.ts';
import { pathExists } from '../util/fsutil.ts';
import { redactUrl } from '../util/redact.ts';
import { blobAt, branchHead, currentBranch, openWorkRepo, readBlobText, type WorkRepo } from './git-repo.ts';
import { REGISTRY_DIR } from './layout.ts';
import { MAX_POINTER_SIZE, parsePointer } from './lfs-pointer.ts';
import { lfsObjectPath } from './lfs-cache.ts';

export interface PushRequest {
  repoDir: string;
  remote: string;
  env: NodeJS.ProcessEnv;
  /** The hub token (from --token-file, MODELSYNC_TOKEN_FILE or MODELSYNC_TOKEN); never printed. */
  token?: string;
  /** Where the token came from, for an error when it is refused ("--token-file ci/token"). */
  tokenSource?: string;
  logger?: Logger;
}

/** What to tell someone whose push needs credentials. */
const AUTH_HINT = 'pass --token-file <file> or set MODELSYNC_TOKEN, or put credentials in the remote URL';

export interface PushResult {
  remote: string;
  /** The remote's URL without credentials. */
  url: string;
  branch: string;
  commit: string;
  uploaded: number;
  skipped: number;
  /** Pointers whose object is not in the local cache (assumed already on the server). */
  missingLocally: number;
}

/** Commits walked to find the pointers a push introduces. */
const MAX_COMMITS = 10_000;

/** The remote's URL, if `--push` can use it: it exists and speaks HTTP(S). */
async function remoteUrl(gitdir: string, remote: string): Promise<string> {
  const url = await git.getConfig({ fs, gitdir, path: `remote.${remote}.url` }) as string | undefined;
  if (!url) throw new UsageError(`no remote named ${JSON.stringify(remote)} to push to (add one with: git remote add ${remote} <url>)`);
  if (!/^https?:\/\//i.test(url)) {
    throw new UsageError(
      `--push speaks HTTP(S) only and remote ${remote} is ${redactUrl(url)}; push with \`git push\` instead (the pre-push hook uploads the LFS objects)`,
    );
  }
  return url;
}

/**
 * Whether `--push` could push to `remote`, asked before a command commits, so
 * a missing remote stops it with nothing committed instead of stranding a
 * commit that was not pushed.
 */
export async function checkPushRemote(repoDir: string, remote: string): Promise<void> {
  await remoteUrl((await openWorkRepo(repoDir)).gitdir, remote);
}

export async function pushBranch(req: PushRequest): Promise<PushResult> {
  const logger = req.logger ?? silentLogger;
  const repo = await openWorkRepo(req.repoDir);
  const branch = await currentBranch(repo);
  const head = await branchHead(repo, branch);
  if (!head) throw new UsageError(`branch ${branch} has no commits to push`);
  const url = await remoteUrl(repo.gitdir, req.remote);
  const token = req.token ?? (req.env.MODELSYNC_TOKEN?.trim() || undefined);

  // ---- LFS objects the server may not have ----
  const tracking = await trackingRef(repo, req.remote, branch);
  const pointers = await pointersSince(repo, head, tracking);
  const objects: UploadObject[] = [];
  let missingLocally = 0;
  for (const p of pointers.values()) {
    const path = lfsObjectPath(repo.gitdir, p.oid);
    if (await pathExists(path)) objects.push({ oid: p.oid, size: p.size, path });
    else missingLocally++;
  }
  if (missingLocally) logger.warn({ missing: missingLocally }, 'some LFS objects are not in the local cache; assuming the server has them');
  let uploaded = 0;
  let skipped = 0;
  if (objects.length) {
    const treeOid = (await git.readCommit({ fs, gitdir: repo.gitdir, oid: head })).commit.tree;
    const lfsconfigOid = await blobAt(repo, treeOid, '.lfsconfig');
    const endpoint = discoverEndpoint({
      remote: url,
      remoteName: req.remote,
      lfsconfig: lfsconfigOid ? await readBlobText(repo, lfsconfigOid) : undefined,
      gitConfig: await fsp.readFile(`${repo.gitdir}/config`, 'utf8'),
      operation: 'upload',
      token,
    });
    const r = await uploadObjects({ endpoint, objects, logger }).catch((err: unknown) => {
      if (err instanceof AuthError) err.message = withAuthHint(err.message, token, req.tokenSource, url);
      throw err;
    });
    uploaded = r.uploaded.length;
    skipped = r.skipped.length;
  }

  // ---- the branch ----
  // isomorphic-git reports a push we cancelled for want of (good) credentials as "The operation was canceled".
  let authProblem: 'needed' | 'refused' | undefined;
  try {
    const res = await git.push({
      fs, http, dir: repo.dir, gitdir: repo.gitdir, remote: req.remote, ref: branch, remoteRef: branch,
      onAuth: () => {
        if (token) return { username: 'modelsync', password: token };
        authProblem = 'needed';
        return { cancel: true };
      },
      onAuthFailure: () => {
        authProblem = 'refused';
        return { cancel: true };
      },
    });
    if (!res.ok) throw new GitError(`push of ${branch} to ${redactUrl(url)} was refused: ${res.error ?? 'unknown reason'}`, { remote: req.remote });
    const refResult = res.refs?.[`refs/heads/${branch}`];
    if (refResult && !refResult.ok) throw new GitError(`push of ${branch} to ${redactUrl(url)} was refused: ${refResult.error}`, { remote: req.remote });
  } catch (err) {
    if (err instanceof ModelsyncError) throw err;
    const msg = redactText(errorMessage(err), url, token);
    const code = (err as { code?: string }).code;
    if (code === 'UserCanceledError' && authProblem) {
      const why = authProblem === 'needed' ? 'the server needs credentials (401)' : 'the server refused the credentials (401)';
      throw new AuthError(withAuthHint(`push to ${redactUrl(url)} was refused: ${why}`, token, req.tokenSource, url));
    }
    if (code === 'HttpError' && /40[13]/.test(msg)) throw new AuthError(withAuthHint(`push to ${redactUrl(url)} was refused: ${msg}`, token, req.tokenSource, url));
    if (code === 'PushRejectedError') throw new GitError(`push to ${redactUrl(url)} was rejected (${msg}); pull, then publish again`, { remote: req.remote });
    throw new GitError(`push to ${redactUrl(url)} failed: ${msg}`, { remote: req.remote });
  }
  await setUpstreamIfNone(repo.gitdir, branch, req.remote);
  return { remote: req.remote, url: redactUrl(url), branch, commit: head, uploaded, skipped, missingLocally };
}

/** As `git push -u` does the first time, so `git status` and a bare `git pull` know the branch's remote. */
async function setUpstreamIfNone(gitdir: string, branch: string, remote: string): Promise<void> {
  if (await git.getConfig({ fs, gitdir, path: `branch.${branch}.remote` })) return;
  await git.setConfig({ fs, gitdir, path: `branch.${branch}.remote`, value: remote });
  await git.setConfig({ fs, gitdir, path: `branch.${branch}.merge`, value: `refs/heads/${branch}` });
}

/** A refusal says which credentials were refused, or how to give some. */
function withAuthHint(message: string, token: string | undefined, tokenSource: string | undefined, url: string): string {
  // Ours replaces the LFS client's hint, which does not know about credentials in the remote URL.
  const base = message.replace(/ \(no token configured: [^)]*\)/, '');
  // 403 is the hub knowing who we are and refusing the role (a site token), not a wrong secret.
  const forbidden = /\b403\b/.test(base);
  if (token && forbidden) return `${base} (the token from ${tokenSource ?? 'MODELSYNC_TOKEN'} is valid but its role may not push: a publisher or admin token is needed)`;
  if (token) return `${base} (the token from ${tokenSource ?? 'MODELSYNC_TOKEN'} was refused)`;
  if (hasUrlCredentials(url)) return `${base} (the credentials in the remote URL were refused)`;
  return `${base} (no token given: ${AUTH_HINT})`;
}

function hasUrlCredentials(url: string): boolean {
  try {
    const u = new URL(url);
    return Boolean(u.username || u.password);
  } catch {
    return false;
  }
}

function redactText(text: string, url: string, token: string | undefined): string {
  let out = text.split(url).join(redactUrl(url));
  if (token) out = out.split(token).join('***');
  return out;
}

async function trackingRef(repo: WorkRepo, remote: string, branch: string): Promise<string | null> {
  try {
    return await git.resolveRef({ fs, gitdir: repo.gitdir, ref: `refs/remotes/${remote}/${branch}` });
  } catch {
    return null;
  }
}

/**
 * LFS pointers under registry/ in the commits from `head` back to (not
 * including) `stop`. Trees already seen are skipped, so this costs about one
 * read per changed tree, not per commit.
 */
async function pointersSince(repo: WorkRepo, head: string, stop: string | null): Promise<Map<string, { oid: string; size: number }>> {
  const out = new Map<string, { oid: string; size: number }>();
  const seenTrees = new Set<string>();
  const seenBlobs = new Set<string>();
  const seenCommits = new Set<string>(stop ? [stop] : []);
  const queue = [head];
  let walked = 0;
  // What the remote branch already has is on the server: only trees and blobs new since then are read.
  if (stop) {
    const markSeen = async (oid: string): Promise<void> => {
      if (seenTrees.has(oid)) return;
      seenTrees.add(oid);
      for (const e of (await git.readTree({ fs, gitdir: repo.gitdir, oid })).tree) {
        if (e.type === 'tree') await markSeen(e.oid);
        else if (e.type === 'blob') seenBlobs.add(e.oid);
      }
    };
    try {
      const reg = await registryTree(repo, stop);
      if (reg) await markSeen(reg);
    } catch {
      // The tracking ref names a commit we cannot read (pruned, a shallow clone): announce everything.
      seenTrees.clear();
      seenBlobs.clear();
    }
  }
  const visitTree = async (oid: string): Promise<void> => {
    if (seenTrees.has(oid)) return;
    seenTrees.add(oid);
    for (const e of (await git.readTree({ fs, gitdir: repo.gitdir, oid })).tree) {
      if (e.type === 'tree') await visitTree(e.oid);
      else if (e.type === 'blob' && !seenBlobs.has(e.oid)) {
        seenBlobs.add(e.oid);
        if (/\.(ya?ml|md)$/i.test(e.path)) continue;
        const { object } = await git.readObject({ fs, gitdir: repo.gitdir, oid: e.oid, format: 'content' });
        const bytes = object as Uint8Array;
        if (bytes.length > MAX_POINTER_SIZE) continue;
        const p = parsePointer(bytes);
        if (p) out.set(p.oid, p);
      }
    }
  };
  while (queue.length && walked < MAX_COMMITS) {
    const oid = queue.shift()!;
    if (seenCommits.has(oid)) continue;
    seenCommits.add(oid);
    walked++;
    const { commit } = await git.readCommit({ fs, gitdir: repo.gitdir, oid });
    const reg = await registryTree(repo, oid);
    if (reg) await visitTree(reg);
    queue.push(...commit.parent);
  }
  return out;
}

async function registryTree(repo: WorkRepo, commitOid: string): Promise<string | undefined> {
  const { commit } = await git.readCommit({ fs, gitdir: repo.gitdir, oid: commitOid });
  const { tree } = await git.readTree({ fs, gitdir: repo.gitdir, oid: commit.tree });
  return tree.find((e) => e.path === REGISTRY_DIR && e.type === 'tree')?.oid;
}

/**
 * `--push` after a commit modelsync just made: the commit stands whatever
 * happens to the push, so a failure says so (and which commit) rather than
 * reading as if the publish itself had failed.
 */
export async function pushAfterCommit(req: PushRequest, done: string, commit: string): Promise<PushResult> {
  try {
    return await pushBranch(req);
  } catch (err) {
    if (err instanceof ModelsyncError) {
      err.message = `${done} in commit ${commit.slice(0, 12)}, but the push failed: ${err.message}`;
      err.data.committed = commit;
    }
    throw err;
  }
}
