/**
 * Bare repositories under `<data>/repos/<name>.git`: name rules, creation
 * (push-to-create), ref snapshots for change events, and a per-repo lock so
 * the refs before and after a push belong to that push alone.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { lfsObjectRelPath } from '../registry/lfs-pointer.ts';
import { fsyncDir } from '../util/fsutil.ts';

const run = promisify(execFile);

/**
 * One path segment of letters, digits, "_", "-" and "."; starting with a
 * letter or digit and not ending in ".git" (the URL adds that). Nothing that
 * needs decoding can match, so `%2e%2e%2f` and friends never reach the disk.
 */
const REPO_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function repoNameProblem(name: string): string | null {
  if (!REPO_NAME_RE.test(name)) return 'must be 1-100 of letters, digits, "_", "-", "." starting with a letter or digit';
  if (name.toLowerCase().endsWith('.git')) return 'must not end in ".git"';
  if (name.includes('..')) return 'must not contain ".."';
  return null;
}

export const ZERO_OID = '0000000000000000000000000000000000000000';

export interface RefChange {
  ref: string;
  before: string;
  after: string;
}

export class RepoStore {
  readonly reposDir: string;
  readonly tmpDir: string;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(readonly dataDir: string) {
    this.reposDir = join(dataDir, 'repos');
    this.tmpDir = join(dataDir, 'tmp');
  }

  /**
   * Create the layout and empty tmp/: what is there at start is left by a hub
   * that died mid-upload or mid-create (kill -9, power loss). Nothing in tmp/
   * is ever read back, so all of it goes. Returns what was removed.
   */
  async init(): Promise<{ entries: number; bytes: number }> {
    await mkdir(this.reposDir, { recursive: true });
    await mkdir(this.tmpDir, { recursive: true });
    let entries = 0;
    let bytes = 0;
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      bytes += await treeBytes(path);
      await rm(path, { recursive: true, force: true });
      entries++;
    }
    return { entries, bytes };
  }

  /** Callers validate `name` with repoNameProblem first. */
  gitDir(name: string): string {
    return join(this.reposDir, `${name}.git`);
  }

  /** git-lfs's own layout inside the bare repo, so `git lfs` run there finds the objects. */
  objectPath(name: string, oid: string): string {
    return join(this.gitDir(name), lfsObjectRelPath(oid));
  }

  /** The repositories on disk, by name (`registry` for repos/registry.git). */
  async list(): Promise<string[]> {
    const names = await readdir(this.reposDir).catch(() => [] as string[]);
    return names.filter((n) => n.endsWith('.git') && !repoNameProblem(n.slice(0, -4))).map((n) => n.slice(0, -4)).sort();
  }

  async exists(name: string): Promise<boolean> {
    try {
      return (await stat(join(this.gitDir(name), 'HEAD'))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Create the bare repo if it is missing. It is initialised under tmp/ and
   * renamed into place, so a reader never sees a half-made repository and two
   * racing creators end with one intact repo.
   */
  async ensure(name: string): Promise<boolean> {
    if (await this.exists(name)) return false;
    const staging = join(this.tmpDir, `repo-${randomBytes(6).toString('hex')}.git`);
    try {
      await run('git', ['init', '--quiet', '--bare', '--initial-branch=main', staging]);
      // Pushes must be accepted over HTTP (we authenticate, not git), and a
      // reflog keeps an audit trail of who moved which ref.
      await run('git', ['config', 'http.receivepack', 'true'], { cwd: staging });
      await run('git', ['config', 'core.logAllRefUpdates', 'always'], { cwd: staging });
      try {
        await rename(staging, this.gitDir(name));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
        throw err;
      }
      await fsyncDir(this.reposDir);
      return true;
    } finally {
      await rm(staging, { recursive: true, force: true }).catch(() => {});
    }
  }

  async refs(name: string): Promise<Map<string, string>> {
    const { stdout } = await run('git', ['for-each-ref', '--format=%(objectname) %(refname)'], { cwd: this.gitDir(name), maxBuffer: 64 << 20 });
    const out = new Map<string, string>();
    for (const line of stdout.split('\n')) {
      const sp = line.indexOf(' ');
      if (sp > 0) out.set(line.slice(sp + 1), line.slice(0, sp));
    }
    return out;
  }

  /**
   * After a push: if HEAD names a branch that does not exist (a repo created
   * by a push of `master` or `release`), point it at a branch that does, so
   * clones check something out.
   */
  async repairHead(name: string, refs: Map<string, string>): Promise<void> {
    const cwd = this.gitDir(name);
    const { stdout } = await run('git', ['symbolic-ref', '-q', 'HEAD'], { cwd }).catch(() => ({ stdout: '' }));
    const head = stdout.trim();
    if (head && refs.has(head)) return;
    const branches = [...refs.keys()].filter((r) => r.startsWith('refs/heads/')).sort();
    const pick = ['refs/heads/main', 'refs/heads/master'].find((b) => refs.has(b)) ?? branches[0];
    if (pick) await run('git', ['symbolic-ref', 'HEAD', pick], { cwd });
  }

  /** Run `fn` while holding this repo's lock (one push at a time per repo). */
  async withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(name, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }
}

export function diffRefs(before: Map<string, string>, after: Map<string, string>): RefChange[] {
  const out: RefChange[] = [];
  for (const [ref, oid] of after) {
    const old = before.get(ref) ?? ZERO_OID;
    if (old !== oid) out.push({ ref, before: old, after: oid });
  }
  for (const [ref, oid] of before) {
    if (!after.has(ref)) out.push({ ref, before: oid, after: ZERO_OID });
  }
  return out.sort((a, b) => a.ref.localeCompare(b.ref));
}

/** Bytes under a path (files only; symlinks not followed), for the log line of what tmp/ held. */
async function treeBytes(path: string): Promise<number> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  let n = 0;
  for (const name of await readdir(path).catch(() => [] as string[])) n += await treeBytes(join(path, name));
  return n;
}
