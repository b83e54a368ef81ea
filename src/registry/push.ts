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
  logger?: Logger;
}

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

export async function pushBranch(req: PushRequest): Promise<PushResult> {
  const logger = req.logger ?? silentLogger;
  const repo = await openWorkRepo(req.repoDir);
  const branch = await currentBranch(repo);
  const head = await branchHead(repo, branch);
  if (!head) throw new UsageError(`branch ${branch} has no commits to push`);
  const url = await git.getConfig({ fs, gitdir: repo.gitdir, path: `remote.${req.remote}.url` }) as string | undefined;
  if (!url) throw new UsageError(`no remote named ${JSON.stringify(req.remote)} (add one with: git remote add ${req.remote} <url>)`);
  if (!/^https?:\/\//i.test(url)) {
    throw new UsageError(
      `--push speaks HTTP(S) only and remote ${req.remote} is ${redactUrl(url)}; push with \`git push\` instead (the pre-push hook uploads the LFS objects)`,
    );
  }
  const token = req.env.MODELSYNC_TOKEN || undefined;

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
    const r = await uploadObjects({ endpoint, objects, logger });
    uploaded = r.uploaded.length;
    skipped = r.skipped.length;
  }

  // ---- the branch ----
  try {
    const res = await git.push({
      fs, http, dir: repo.dir, gitdir: repo.gitdir, remote: req.remote, ref: branch, remoteRef: branch,
      onAuth: () => (token ? { username: 'modelsync', password: token } : { cancel: true }),
      onAuthFailure: () => ({ cancel: true }),
    });
    if (!res.ok) throw new GitError(`push of ${branch} to ${redactUrl(url)} was refused: ${res.error ?? 'unknown reason'}`, { remote: req.remote });
    const refResult = res.refs?.[`refs/heads/${branch}`];
    if (refResult && !refResult.ok) throw new GitError(`push of ${branch} to ${redactUrl(url)} was refused: ${refResult.error}`, { remote: req.remote });
  } catch (err) {
    if (err instanceof ModelsyncError) throw err;
    const msg = redactText(errorMessage(err), url, token);
    const code = (err as { code?: string }).code;
    if (code === 'HttpError' && /40[13]/.test(msg)) throw new AuthError(`push to ${redactUrl(url)} was refused: ${msg} (set MODELSYNC_TOKEN or put credentials in the remote URL)`);
    if (code === 'PushRejectedError') throw new GitError(`push to ${redactUrl(url)} was rejected (${msg}); pull, then publish again`, { remote: req.remote });
    throw new GitError(`push to ${redactUrl(url)} failed: ${msg}`, { remote: req.remote });
  }
  return { remote: req.remote, url: redactUrl(url), branch, commit: head, uploaded, skipped, missingLocally };
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
    const { tree } = await git.readTree({ fs, gitdir: repo.gitdir, oid: commit.tree });
    const reg = tree.find((e) => e.path === REGISTRY_DIR && e.type === 'tree');
    if (reg) await visitTree(reg.oid);
    queue.push(...commit.parent);
  }
  return out;
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
