/**
 * The Git side of publishing, promoting and rolling back, through
 * isomorphic-git: find the repo and its branch, decide the author, build a
 * tree from HEAD plus a few changed files, validate it, and only then move
 * the working tree, the branch and the index. A change that fails anywhere
 * leaves the working tree as it was and commits nothing.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import git from 'isomorphic-git';
import { GitError, LockedError, UsageError, ValidationError } from '../errors.ts';
import { GitConfig } from '../lfs/gitconfig.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import { critical, checkInterrupted } from './interrupt.ts';
import { loadRegistry } from './load.ts';
import { requireGitRepo } from './open.ts';
import { TreeSource } from './source.ts';

export interface WorkRepo {
  /** The working tree. */
  dir: string;
  gitdir: string;
}

export interface Person {
  name: string;
  email: string;
}

/** A registry checkout with a working tree (publish and friends edit files in it). */
export async function openWorkRepo(dir: string): Promise<WorkRepo> {
  const loc = await requireGitRepo(resolve(dir), 'committing (publish, promote, rollback, rollout)');
  if (!loc.dir) throw new UsageError(`${dir} is a bare repository; publish, promote and rollback need a checkout with a working tree`);
  return { dir: loc.dir, gitdir: loc.gitdir };
}

/** The checked-out branch; a detached HEAD is refused (a commit there would be lost). */
export async function currentBranch(repo: WorkRepo): Promise<string> {
  const branch = await git.currentBranch({ fs, gitdir: repo.gitdir, fullname: false, test: false });
  if (!branch) throw new UsageError(`${repo.dir}: HEAD is detached; check out the branch to commit to (e.g. git switch main)`);
  return branch;
}

/** The commit the branch points at, or null on a branch with no commits yet. */
export async function branchHead(repo: WorkRepo, branch: string): Promise<string | null> {
  try {
    return await git.resolveRef({ fs, gitdir: repo.gitdir, ref: `refs/heads/${branch}` });
  } catch {
    return null;
  }
}

export async function commitTreeOid(repo: WorkRepo, commit: string): Promise<string> {
  return (await git.readCommit({ fs, gitdir: repo.gitdir, oid: commit })).commit.tree;
}

/** The blob oid at `path` in a tree, or null. */
export async function blobAt(repo: WorkRepo, tree: string | null, path: string): Promise<string | null> {
  if (!tree) return null;
  let cur = tree;
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    const { tree: entries } = await git.readTree({ fs, gitdir: repo.gitdir, oid: cur });
    const ent = entries.find((e) => e.path === parts[i]);
    if (!ent) return null;
    if (i === parts.length - 1) return ent.type === 'blob' ? ent.oid : null;
    if (ent.type !== 'tree') return null;
    cur = ent.oid;
  }
  return null;
}

export async function readBlobText(repo: WorkRepo, oid: string): Promise<string> {
  const { blob } = await git.readBlob({ fs, gitdir: repo.gitdir, oid });
  return Buffer.from(blob).toString('utf8');
}

/**
 * Who commits: like git, GIT_AUTHOR_NAME/EMAIL win, then user.name/email from
 * the repository's config, then the global config; failing all of that a
 * recognisable placeholder rather than an error (a CI job may have none).
 */
export async function resolveAuthor(repo: WorkRepo, env: NodeJS.ProcessEnv): Promise<{ author: Person; committer: Person }> {
  const local = await readConfigFile(join(repo.gitdir, 'config'));
  const globalFiles = env.GIT_CONFIG_GLOBAL
    ? [env.GIT_CONFIG_GLOBAL]
    : [join(env.XDG_CONFIG_HOME ?? join(env.HOME ?? homedir(), '.config'), 'git', 'config'), join(env.HOME ?? homedir(), '.gitconfig')];
  let global = new GitConfig();
  for (const f of globalFiles) global = global.overlay(await readConfigFile(f));
  const cfg = global.overlay(local);
  const name = env.GIT_AUTHOR_NAME || cfg.get('user.name') || 'modelsync';
  const email = env.GIT_AUTHOR_EMAIL || cfg.get('user.email') || 'modelsync@localhost';
  const author = { name, email };
  const committer = { name: env.GIT_COMMITTER_NAME || name, email: env.GIT_COMMITTER_EMAIL || email };
  return { author, committer };
}

async function readConfigFile(path: string): Promise<GitConfig> {
  try {
    return GitConfig.parse(await fsp.readFile(path, 'utf8'));
  } catch {
    return new GitConfig();
  }
}

export interface FileChange {
  /** Repo-relative posix path. */
  path: string;
  /** New content, or null to delete the file. */
  content: Uint8Array | string | null;
  /** Mode 100755 in Git and 0755 in the working tree (hooks). */
  executable?: boolean;
}

export interface TreeChange {
  oid: string;
  executable?: boolean;
}

/**
 * A tree equal to `base` except for `changes` (blob oids, or null to
 * delete). Directories left empty disappear, as in Git.
 */
export async function buildTree(repo: WorkRepo, base: string | null, changes: Map<string, TreeChange | null>): Promise<string | null> {
  const entries = new Map<string, { mode: string; path: string; oid: string; type: 'blob' | 'tree' | 'commit' }>();
  if (base) for (const e of (await git.readTree({ fs, gitdir: repo.gitdir, oid: base })).tree) entries.set(e.path, e);
  const sub = new Map<string, Map<string, TreeChange | null>>();
  for (const [path, change] of changes) {
    const slash = path.indexOf('/');
    if (slash < 0) {
      if (change) entries.set(path, { mode: change.executable ? '100755' : '100644', path, oid: change.oid, type: 'blob' });
      else entries.delete(path);
      continue;
    }
    const head = path.slice(0, slash);
    let m = sub.get(head);
    if (!m) sub.set(head, (m = new Map()));
    m.set(path.slice(slash + 1), change);
  }
  for (const [head, inner] of sub) {
    const existing = entries.get(head);
    const oid = await buildTree(repo, existing?.type === 'tree' ? existing.oid : null, inner);
    if (oid) entries.set(head, { mode: '040000', path: head, oid, type: 'tree' });
    else entries.delete(head);
  }
  if (entries.size === 0) return null;
  return git.writeTree({ fs, gitdir: repo.gitdir, tree: [...entries.values()] });
}

/** The branch a commit is made on, as it is when the repository lock is taken. */
export interface Base {
  branch: string;
  /** The branch's commit; null on a branch with no commits yet. */
  commit: string | null;
  tree: string | null;
}

export interface Prepared<T> {
  message: string;
  changes: FileChange[];
  /** Whatever the caller wants back from the preparation (the version promoted from, …). */
  extra: T;
}

export interface CommitRequest<T = undefined> {
  /**
   * What to commit, computed from the branch as it is under the lock: edits
   * of model_registry.yaml must start from the commit they are made on, or
   * a concurrent promotion would be silently undone.
   */
  prepare: (base: Base) => Promise<Prepared<T>>;
  env: NodeJS.ProcessEnv;
  /** Validate the registry the commit would record, and refuse if it is invalid (default true). */
  validate?: boolean;
  /** Context for the ValidationError ("refusing to publish …"). */
  what?: string;
  /** Aborted by Ctrl-C: honoured until the working tree is touched, never after. */
  signal?: AbortSignal;
  /** Sign the commit: given the commit object without its signature, return the armored signature (`--sign`). */
  sign?: (payload: string) => Promise<string>;
}

export interface CommitResult<T = undefined> {
  commit: string;
  branch: string;
  parent: string | null;
  tree: string;
  extra: T;
}

/** How long a command waits for another git or modelsync process to finish with the repository. */
const LOCK_WAIT_MS = 30_000;

/**
 * Hold the repository's index lock (`<gitdir>/index.lock`, the file git
 * itself takes for commits, merges and checkouts) while `fn` runs, so no
 * git command and no other modelsync changes the index, the working tree's
 * tracked files or the branch meanwhile. Waits a while for a lock someone
 * else holds.
 */
export async function withRepoLock<T>(repo: WorkRepo, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const release = await acquireRepoLock(repo, LOCK_WAIT_MS, signal);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/** Take the index lock, waiting up to `waitMs`; returns its release. */
export async function acquireRepoLock(repo: WorkRepo, waitMs: number, signal?: AbortSignal): Promise<() => Promise<void>> {
  const lock = join(repo.gitdir, 'index.lock');
  const deadline = Date.now() + waitMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    checkInterrupted(signal);
    try {
      await (await fsp.open(lock, 'wx')).close();
      return () => fsp.rm(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (Date.now() >= deadline) {
      throw new LockedError(
        `another git or modelsync process is changing ${repo.dir} (${lock} exists); wait for it to finish, or remove that file if no such process is running`,
        { lock },
      );
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Fixed changes, for callers with nothing to recompute under the lock (init). */
export async function commitChanges(
  repo: WorkRepo,
  req: Omit<CommitRequest, 'prepare'> & { message: string; changes: FileChange[] },
): Promise<CommitResult> {
  return commitOnBranch(repo, { ...req, prepare: async () => ({ message: req.message, changes: req.changes, extra: undefined }) });
}

/**
 * Commit on the current branch, touching nothing else.
 *
 * Under the repository lock: read the branch, let the caller prepare the
 * change from it, refuse if a file to be written has edits that are not
 * committed (we never fold someone's work into our commit, nor overwrite
 * it), build the new tree from the branch's and validate it; only then
 * write the working tree, the commit, the branch (compare-and-set, as git
 * does, with a reflog entry) and the index, as one critical section that a
 * Ctrl-C does not cut short. The working tree is restored if the commit
 * fails. Other staged changes stay staged, as with `git commit -- <paths>`.
 */
export async function commitOnBranch<T>(repo: WorkRepo, req: CommitRequest<T>): Promise<CommitResult<T>> {
  return withRepoLock(repo, async () => {
    // Read under the lock: a checkout cannot switch branches between this and the commit.
    const branch = await currentBranch(repo);
    const parent = await branchHead(repo, branch);
    const baseTree = parent ? await commitTreeOid(repo, parent) : null;
    const { message, changes, extra } = await req.prepare({ branch, commit: parent, tree: baseTree });
    await assertUntouched(repo, baseTree, changes.map((c) => c.path));

    const blobs = new Map<string, TreeChange | null>();
    for (const c of changes) {
      blobs.set(c.path, c.content === null ? null : { oid: await git.writeBlob({ fs, gitdir: repo.gitdir, blob: toBytes(c.content) }), executable: c.executable });
    }
    const tree = (await buildTree(repo, baseTree, blobs)) ?? (await git.writeTree({ fs, gitdir: repo.gitdir, tree: [] }));

    if (req.validate !== false) {
      const { problems } = await loadRegistry(new TreeSource({ dir: repo.dir, gitdir: repo.gitdir }, tree, 'the commit being made'));
      if (problems.length) throw new ValidationError(problems, `${req.what ?? 'refusing to commit'}: the registry would be invalid`);
    }
    const who = await resolveAuthor(repo, req.env);
    checkInterrupted(req.signal);

    return critical(async () => {
      const undo = await writeWorkTree(repo, changes);
      let commit: string;
      try {
        commit = await git.commit({
          fs, dir: repo.dir, gitdir: repo.gitdir, message: message.endsWith('\n') ? message : `${message}\n`,
          author: who.author, committer: who.committer, tree, parent: parent ? [parent] : [], ref: `refs/heads/${branch}`, noUpdateBranch: true,
          ...(req.sign ? { signingKey: 'git-config', onSign: async ({ payload }: { payload: string }) => ({ signature: await req.sign!(payload) }) } : {}),
        });
        await updateBranch(repo, branch, parent, commit, who.committer, `commit: ${message.split('\n')[0]}`);
      } catch (err) {
        await undo().catch(() => {});
        throw err;
      }
      // The index follows the commit for our paths only.
      for (const c of changes) {
        if (c.content === null) await git.remove({ fs, dir: repo.dir, gitdir: repo.gitdir, filepath: c.path }).catch(() => {});
      }
      const added = changes.filter((c) => c.content !== null).map((c) => c.path);
      if (added.length) await git.add({ fs, dir: repo.dir, gitdir: repo.gitdir, filepath: added, force: true });
      return { commit, branch, parent, tree, extra };
    });
  }, req.signal);
}

/**
 * Move `refs/heads/<branch>` from `from` to `to` the way git does: take
 * `<ref>.lock` exclusively, check the branch still points at `from`, write
 * the new value there and rename it over the ref; then log it in the
 * reflogs, so `git reflog` shows modelsync's commits like any other.
 */
async function updateBranch(repo: WorkRepo, branch: string, from: string | null, to: string, who: Person, reason: string): Promise<void> {
  await moveBranchLocked(repo.gitdir, branch, from, to, () => branchHead(repo, branch));
  const secs = Math.floor(Date.now() / 1000);
  const off = -new Date().getTimezoneOffset();
  const tz = `${off >= 0 ? '+' : '-'}${String(Math.floor(Math.abs(off) / 60)).padStart(2, '0')}${String(Math.abs(off) % 60).padStart(2, '0')}`;
  const line = `${from ?? '0'.repeat(40)} ${to} ${who.name} <${who.email}> ${secs} ${tz}\t${reason.replace(/\n/g, ' ')}\n`;
  // The reflog is a convenience: failing to write it must not fail a commit that is made.
  for (const log of [join(repo.gitdir, 'logs', 'refs', 'heads', ...branch.split('/')), join(repo.gitdir, 'logs', 'HEAD')]) {
    await fsp.mkdir(dirname(log), { recursive: true }).then(() => fsp.appendFile(log, line)).catch(() => {});
  }
}

/**
 * Point `refs/heads/<branch>` at `to` as git does: `<ref>.lock` created exclusively, checked
 * that the branch still points at `from` (read by `current`), written, fsynced and renamed over
 * the ref, so a reader (http-backend serving an agent) never sees a half-written ref.
 */
export async function moveBranchLocked(gitdir: string, branch: string, from: string | null, to: string, current: () => Promise<string | null | undefined>): Promise<void> {
  const ref = join(gitdir, 'refs', 'heads', ...branch.split('/'));
  const lock = `${ref}.lock`;
  await fsp.mkdir(dirname(ref), { recursive: true });
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(lock, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new LockedError(`branch ${branch} is being updated by another process (${lock} exists); nothing was committed`, { lock });
    throw err;
  }
  try {
    const now = (await current()) ?? null;
    if (now !== from) throw new GitError(`branch ${branch} moved while committing (now ${now?.slice(0, 12)}); nothing was committed, try again`, { branch });
    await fh.writeFile(`${to}\n`);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await fsp.rename(lock, ref);
  } catch (err) {
    await fh?.close().catch(() => {});
    await fsp.rm(lock, { force: true }).catch(() => {});
    throw err;
  }
}

function toBytes(content: Uint8Array | string): Uint8Array {
  return typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
}

/** Refuse when a path we are about to write has edits that are not committed (working tree or index). */
async function assertUntouched(repo: WorkRepo, baseTree: string | null, paths: string[]): Promise<void> {
  const dirty: string[] = [];
  if (!baseTree) {
    // First commit on the branch: nothing to compare with; only refuse to clobber.
    const staged = new Set(await git.listFiles({ fs, dir: repo.dir, gitdir: repo.gitdir }));
    for (const p of paths) if (staged.has(p) || fs.existsSync(join(repo.dir, p))) dirty.push(p);
    if (dirty.length) throw new UsageError(`${dirty.join(', ')} already exist(s) in the working tree or index; refusing to overwrite`, { paths: dirty });
    return;
  }
  const rows = await git.statusMatrix({ fs, dir: repo.dir, gitdir: repo.gitdir, ref: 'HEAD', filepaths: paths });
  const wanted = new Set(paths);
  for (const [file, head, work, stage] of rows) {
    if (!wanted.has(file)) continue;
    // [file, HEAD, WORKDIR, STAGE]: 1,1,1 is "unmodified"; a new file must not exist anywhere yet.
    if (head !== 1 || work !== 1 || stage !== 1) dirty.push(file);
  }
  if (dirty.length) {
    throw new UsageError(`uncommitted changes in ${dirty.join(', ')}; commit or discard them first (modelsync commits only its own change)`, { paths: dirty });
  }
}

/** Write the new content into the working tree; returns a function that puts back what was there. */
async function writeWorkTree(repo: WorkRepo, changes: FileChange[]): Promise<() => Promise<void>> {
  const saved: Array<{ path: string; bytes: Buffer | null }> = [];
  const createdDirs: string[] = [];
  const undo = async (): Promise<void> => {
    for (const s of saved.reverse()) {
      const full = join(repo.dir, s.path);
      if (s.bytes) await writeFileAtomic(full, s.bytes);
      else await fsp.rm(full, { force: true });
    }
    for (const d of createdDirs.reverse()) await fsp.rmdir(d).catch(() => {});
  };
  try {
    for (const c of changes) {
      const full = join(repo.dir, c.path);
      let before: Buffer | null = null;
      try {
        before = await fsp.readFile(full);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      saved.push({ path: c.path, bytes: before });
      if (c.content === null) {
        await fsp.rm(full, { force: true });
        continue;
      }
      const fresh: string[] = [];
      for (let d = dirname(full); d.startsWith(repo.dir) && d !== repo.dir; d = dirname(d)) {
        if (fs.existsSync(d)) break;
        fresh.push(d);
      }
      // Outermost first, so undoing in reverse removes the innermost first.
      createdDirs.push(...fresh.reverse());
      await writeFileAtomic(full, toBytes(c.content), c.executable ? 0o755 : 0o644);
    }
  } catch (err) {
    await undo().catch(() => {});
    throw err;
  }
  return undo;
}
