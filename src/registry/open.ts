/**
 * Where a registry command works, checked up front: a wrong `--repo`, an
 * empty repository or a Git repository that holds no registry is a usage
 * error naming the directory (exit 2), never an empty registry with one
 * "file is missing" problem.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import git from 'isomorphic-git';
import * as fs from 'node:fs';
import { ModelsyncError, UsageError } from '../errors.ts';
import { MODEL_REGISTRY_FILE, REGISTRY_DIR } from './layout.ts';
import { CommitSource, IndexSource, WorkTreeSource, findGitDir, type RegistrySource } from './source.ts';

export interface SourceChoice {
  rev?: string;
  staged?: boolean;
  /** With `staged`: read this index file instead of .git/index (GIT_INDEX_FILE in a hook). */
  indexFile?: string;
}

export interface GitLocation {
  /** The working tree; absent for a bare repository. */
  dir?: string;
  gitdir: string;
  /**
   * In a linked worktree (`git worktree add`): its own git directory, which
   * holds its HEAD and index, while `gitdir` is the shared one (objects,
   * branches, config), where isomorphic-git can read them.
   */
  linked?: string;
}

/**
 * The repository a command works on: `--repo` as given (it must be a
 * directory), or else the current directory, or the top of the Git checkout
 * it lies in, as git itself finds it (`modelsync validate` from `sites/`).
 */
export async function resolveRepoDir(cwd: string, repo: string | undefined): Promise<string> {
  const dir = resolve(cwd, repo ?? '.');
  let st;
  try {
    st = await fsp.stat(dir);
  } catch {
    throw new UsageError(`${repo === undefined ? '' : '--repo '}${dir} does not exist`, { dir });
  }
  if (!st.isDirectory()) throw new UsageError(`${repo === undefined ? '' : '--repo '}${dir} is not a directory`, { dir });
  if (repo !== undefined || (await isRegistryDir(dir))) return dir;
  for (let d = dir; ; d = dirname(d)) {
    if (await exists(join(d, '.git'))) return d;
    if (dirname(d) === d) return dir;
  }
}

async function isRegistryDir(dir: string): Promise<boolean> {
  return (await exists(join(dir, REGISTRY_DIR))) || (await exists(join(dir, '.git'))) || (await exists(join(dir, 'HEAD')));
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Git repository at `dir`, for a command that needs one (`why` says
 * which); not a repository is a usage error. A linked worktree is allowed
 * to callers that only read or only touch the shared config (`allowLinked`:
 * validate --staged and --rev, so its hooks work; hooks install), never to
 * those that commit: isomorphic-git does not know worktrees, and a commit
 * must not land on the wrong branch.
 */
export async function requireGitRepo(dir: string, why: string, opts: { allowLinked?: boolean } = {}): Promise<GitLocation> {
  let loc: GitLocation;
  try {
    loc = await findGitDir(dir);
  } catch (err) {
    if (err instanceof ModelsyncError && err.code === 'NotFoundError') {
      throw new UsageError(`${dir} is not a Git repository, and ${why} works on a registry checkout: run it there or give --repo <registry checkout>`, { dir });
    }
    throw err;
  }
  let common: string;
  try {
    common = resolve(loc.gitdir, (await fsp.readFile(join(loc.gitdir, 'commondir'), 'utf8')).trim());
  } catch {
    return loc;
  }
  if (!opts.allowLinked) {
    throw new UsageError(
      `${dir} is a linked worktree (git worktree), where modelsync cannot commit (${why}); run this in the main checkout instead`,
      { dir, gitdir: loc.gitdir },
    );
  }
  return { dir: loc.dir, gitdir: common, linked: loc.gitdir };
}

/** `rev` as the shared git directory understands it: a linked worktree's HEAD is its own. */
async function revIn(loc: GitLocation, rev: string): Promise<string> {
  if (!loc.linked || rev !== 'HEAD') return rev;
  const head = (await fsp.readFile(join(loc.linked, 'HEAD'), 'utf8')).trim();
  return head.startsWith('ref: ') ? head.slice(5) : head;
}

/** Whether the repository has a commit at HEAD (a fresh `git init` has none). */
export async function hasCommits(loc: GitLocation): Promise<boolean> {
  try {
    await git.resolveRef({ fs, gitdir: loc.gitdir, ref: await revIn(loc, 'HEAD') });
    return true;
  } catch {
    return false;
  }
}

/**
 * The source a registry command reads: the working tree by default (HEAD for
 * a bare repository, which has none), or `--rev`, or `--staged`. Refuses,
 * as a usage error, anything that holds no registry at all.
 */
export async function openSource(repoDir: string, choice: SourceChoice = {}): Promise<RegistrySource> {
  const dir = resolve(repoDir);
  if (choice.rev && choice.staged) throw new UsageError('give --rev or --staged, not both');
  let source: RegistrySource;
  if (choice.rev || choice.staged) {
    const loc = await requireGitRepo(dir, choice.rev ? '--rev' : '--staged', { allowLinked: true });
    if (choice.staged) {
      if (!loc.dir) throw new UsageError(`--staged needs a checkout with a working tree; ${dir} is a bare repository`);
      const index = choice.indexFile ?? (loc.linked ? join(loc.linked, 'index') : undefined);
      source = new IndexSource({ dir: loc.dir, gitdir: loc.gitdir }, index);
    } else {
      const shared = { dir: loc.dir, gitdir: loc.gitdir };
      try {
        source = await CommitSource.open(shared, await revIn(loc, choice.rev!));
      } catch (err) {
        if (!(await hasCommits(loc))) throw new UsageError(`${dir} has no commits yet, so --rev ${choice.rev} names nothing`, { dir });
        throw err;
      }
    }
  } else if (!(await exists(join(dir, '.git'))) && (await exists(join(dir, 'HEAD'))) && (await exists(join(dir, 'objects')))) {
    // A bare repository (a hub's copy): what it declares is its HEAD.
    const loc = await requireGitRepo(dir, 'reading a bare repository');
    if (!(await hasCommits(loc))) {
      const branches = await git.listBranches({ fs, gitdir: loc.gitdir }).catch(() => [] as string[]);
      throw new UsageError(
        branches.length
          ? `${dir} is a bare repository whose HEAD names a branch with no commits; give --rev <branch> (branches: ${branches.join(', ')})`
          : `${dir} is a bare repository with no commits yet; there is no registry to read`,
        { dir },
      );
    }
    source = await CommitSource.open(loc, 'HEAD');
  } else {
    source = new WorkTreeSource(dir);
  }
  if ((await source.readText(MODEL_REGISTRY_FILE)) === null && (await source.list(REGISTRY_DIR)) === null) {
    throw new UsageError(
      `${dir} is not a modelsync registry (no ${MODEL_REGISTRY_FILE} in the ${source.description}); ` +
        'give --repo <registry checkout>, or create one with `modelsync init`',
      { dir },
    );
  }
  return source;
}
