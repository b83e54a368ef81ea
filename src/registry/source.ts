/**
 * Where registry content is read from: the working tree, the index (what a
 * commit would record) or a commit. Validation and reconcile read through
 * this one interface, so "validate my edit", "validate this pull request's
 * head" and "what does the branch declare" share every rule.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import git from 'isomorphic-git';
import { GitError, NotFoundError, ValidationError } from '../errors.ts';
import { hashFile, hashBytes, type Digest } from '../util/hash.ts';
import { gitObjectSize } from './git-object-size.ts';
import { MAX_POINTER_SIZE, parsePointer, type LfsPointer } from './lfs-pointer.ts';

export interface DirEntry {
  name: string;
  type: 'file' | 'dir';
}

/** What a registry file holds: an LFS pointer, or the content itself. */
export type FileContent =
  | { kind: 'pointer'; pointer: LfsPointer }
  | { kind: 'content'; size: number; digest(): Promise<Digest>; bytes(): Promise<Uint8Array> };

export interface RegistrySource {
  /** For messages: "working tree", "index", "commit 1a2b3c4". */
  readonly description: string;
  /** The commit read, when reading one. */
  readonly commit?: string;
  readText(path: string): Promise<string | null>;
  list(dir: string): Promise<DirEntry[] | null>;
  inspect(path: string): Promise<FileContent | null>;
}

/** Paths in the registry are always posix, relative to the repo root. */
function splitDir(path: string): string {
  return path.replace(/\/+$/, '');
}

/** Longest text file read from a working tree or a commit; see WorkTreeSource.readText. */
export const MAX_TEXT_BYTES = 4 << 20;

/**
 * A registry text file (YAML, a template) too large to read: refused from its
 * size alone, named, as a validation problem of the file.
 */
export function oversizedText(path: string, size: number): ValidationError {
  const mib = (size / (1 << 20)).toFixed(1);
  return new ValidationError(
    [{ file: path, line: 1, col: 1, path: '', message: `file is ${mib} MiB (${size} bytes): too large for a registry text file (YAML files hold at most 1 MiB, templates ${MAX_TEXT_BYTES >> 20} MiB); it was not read` }],
    `registry file ${path} is too large`,
  );
}

export class WorkTreeSource implements RegistrySource {
  readonly description = 'working tree';
  constructor(readonly root: string) {}

  /**
   * At most MAX_TEXT_BYTES: registry YAML and templates are refused far below
   * that by their parsers, and a gigabyte file named manifest.yaml must not
   * be read whole to find that out.
   */
  async readText(path: string): Promise<string | null> {
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(join(this.root, path), 'r');
      const { size } = await fh.stat();
      const buf = Buffer.alloc(Math.min(size, MAX_TEXT_BYTES) + 1);
      let n = 0;
      for (let r; n < buf.length && (r = await fh.read(buf, n, buf.length - n, null)).bytesRead > 0; ) n += r.bytesRead;
      return buf.subarray(0, n).toString('utf8');
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'EISDIR') return null;
      throw err;
    } finally {
      await fh?.close();
    }
  }

  async list(dir: string): Promise<DirEntry[] | null> {
    try {
      const ents = await fsp.readdir(join(this.root, dir), { withFileTypes: true });
      return ents
        // The checkout's own repository is not registry content.
        .filter((e) => (e.isFile() || e.isDirectory()) && !(splitDir(dir) === '' && e.name === '.git'))
        .map((e) => ({ name: e.name, type: e.isDirectory() ? ('dir' as const) : ('file' as const) }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async inspect(path: string): Promise<FileContent | null> {
    const full = join(this.root, path);
    let st: fs.Stats;
    try {
      st = await fsp.stat(full);
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    if (!st.isFile()) return null;
    if (st.size <= MAX_POINTER_SIZE) {
      const bytes = await fsp.readFile(full);
      const pointer = parsePointer(bytes);
      if (pointer) return { kind: 'pointer', pointer };
      return { kind: 'content', size: bytes.length, digest: async () => hashBytes(bytes), bytes: async () => bytes };
    }
    // Smudged LFS content can be gigabytes: hash it by streaming, only when asked.
    return { kind: 'content', size: st.size, digest: () => hashFile(full), bytes: () => fsp.readFile(full) };
  }
}

interface GitLocation {
  dir?: string;
  gitdir: string;
}

/** Reads blobs out of Git objects: a commit's tree, or the index. */
abstract class GitObjectSource implements RegistrySource {
  abstract readonly description: string;
  readonly commit?: string;
  /**
   * isomorphic-git's object cache: without it every read re-parses the
   * packfile index, which made loading a registry from a fetched (packed)
   * clone several times slower.
   */
  protected readonly cache: object = {};
  constructor(protected readonly loc: GitLocation) {}

  protected abstract lookup(path: string): Promise<{ oid: string; type: 'blob' | 'tree' } | null>;
  protected abstract children(dir: string): Promise<DirEntry[] | null>;

  protected async blob(oid: string): Promise<Uint8Array> {
    const { blob } = await git.readBlob({ fs, gitdir: this.loc.gitdir, oid, cache: this.cache });
    return blob;
  }

  async readText(path: string): Promise<string | null> {
    const hit = await this.lookup(path);
    if (!hit || hit.type !== 'blob') return null;
    // isomorphic-git inflates a blob whole (a 100 MB YAML cost ~575 MB): its header says the size first.
    const size = await gitObjectSize(this.loc.gitdir, hit.oid);
    if (size !== undefined && size > MAX_TEXT_BYTES) throw oversizedText(path, size);
    // Cut, like WorkTreeSource.readText: a blob too long for a string would throw, not be reported.
    return Buffer.from(await this.blob(hit.oid)).subarray(0, MAX_TEXT_BYTES + 1).toString('utf8');
  }

  list(dir: string): Promise<DirEntry[] | null> {
    return this.children(splitDir(dir));
  }

  async inspect(path: string): Promise<FileContent | null> {
    const hit = await this.lookup(path);
    if (!hit || hit.type !== 'blob') return null;
    const bytes = await this.blob(hit.oid);
    const pointer = parsePointer(bytes);
    if (pointer) return { kind: 'pointer', pointer };
    return { kind: 'content', size: bytes.length, digest: async () => hashBytes(bytes), bytes: async () => bytes };
  }
}

/** A tree object: what a commit records, or what one is about to (publish validates it before committing). */
export class TreeSource extends GitObjectSource {
  readonly description: string;
  private readonly trees = new Map<string, Promise<Array<{ path: string; oid: string; type: string }> | null>>();

  constructor(loc: GitLocation, protected readonly rootTree: string, description = `tree ${rootTree.slice(0, 12)}`) {
    super(loc);
    this.description = description;
  }

  private tree(dir: string): Promise<Array<{ path: string; oid: string; type: string }> | null> {
    let p = this.trees.get(dir);
    if (!p) {
      p = (async () => {
        if (dir === '') return this.readTreeObject(this.rootTree);
        const slash = dir.lastIndexOf('/');
        const parent = await this.tree(slash < 0 ? '' : dir.slice(0, slash));
        const ent = parent?.find((e) => e.path === dir.slice(slash + 1));
        if (!ent || ent.type !== 'tree') return null;
        return this.readTreeObject(ent.oid);
      })();
      this.trees.set(dir, p);
    }
    return p;
  }

  /**
   * Parsed here, not by git.readTree: that refuses a whole tree when one entry's name is unsafe
   * (`notes\readme.txt`, `.GIT`), so one such name would stop every read of the registry. Here
   * every entry is kept and the loader reports the unsafe ones (treeNameProblems) as problems.
   */
  private async readTreeObject(oid: string): Promise<Array<{ path: string; oid: string; type: string }>> {
    const { object, type } = await git.readObject({ fs, gitdir: this.loc.gitdir, oid, format: 'content', cache: this.cache });
    if (type !== 'tree') throw new GitError(`object ${oid} is a ${type}, not a tree`, { oid });
    return parseTree(Buffer.from(object as Uint8Array), oid);
  }

  protected async lookup(path: string): Promise<{ oid: string; type: 'blob' | 'tree' } | null> {
    const slash = path.lastIndexOf('/');
    const entries = await this.tree(slash < 0 ? '' : path.slice(0, slash));
    const ent = entries?.find((e) => e.path === path.slice(slash + 1));
    if (!ent || (ent.type !== 'blob' && ent.type !== 'tree')) return null;
    return { oid: ent.oid, type: ent.type };
  }

  protected async children(dir: string): Promise<DirEntry[] | null> {
    const entries = await this.tree(dir);
    if (!entries) return null;
    return entries
      .filter((e) => e.type === 'blob' || e.type === 'tree')
      .map((e) => ({ name: e.path, type: e.type === 'tree' ? ('dir' as const) : ('file' as const) }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

export class CommitSource extends TreeSource {
  override readonly commit: string;

  private constructor(loc: GitLocation, commit: string, rootTree: string) {
    super(loc, rootTree, `commit ${commit.slice(0, 12)}`);
    this.commit = commit;
  }

  /**
   * Open `rev` in the repository at gitdir: a branch, tag, ref or (abbreviated) commit oid, with
   * git's ancestry suffixes `~N`, `^` and `^N` (CI jobs say `HEAD~1` and `HEAD^`).
   */
  static async open(loc: GitLocation, rev: string): Promise<CommitSource> {
    const m = /^(.+?)((?:~\d*|\^\d*)*)$/.exec(rev);
    const base = m?.[1] ?? rev;
    let oid: string;
    try {
      // resolveRef returns a full oid unchanged and follows branches, tags and symbolic refs.
      oid = await git.resolveRef({ fs, gitdir: loc.gitdir, ref: base });
    } catch {
      try {
        oid = await git.expandOid({ fs, gitdir: loc.gitdir, oid: base });
      } catch {
        throw new NotFoundError(`cannot resolve ${JSON.stringify(rev)} in ${loc.dir ?? loc.gitdir} (give a branch, tag, commit id, optionally with ~N or ^N)`, { rev });
      }
    }
    for (const step of (m?.[2] ?? '').match(/[~^]\d*/g) ?? []) {
      const n = step.length > 1 ? Number(step.slice(1)) : 1;
      // ~N walks N first parents; ^N takes the Nth parent (^0 is the commit itself).
      const walk: Array<number> = step[0] === '~' ? Array.from({ length: n }, () => 0) : n === 0 ? [] : [n - 1];
      for (const parentIndex of walk) {
        let parents: string[];
        try {
          parents = (await git.readCommit({ fs, gitdir: loc.gitdir, oid })).commit.parent;
        } catch (err) {
          throw new GitError(`cannot read commit ${oid} while resolving ${JSON.stringify(rev)}: ${(err as Error).message}`, { rev, oid }, err);
        }
        const next = parents[parentIndex];
        if (!next) throw new NotFoundError(`cannot resolve ${JSON.stringify(rev)} in ${loc.dir ?? loc.gitdir}: commit ${oid.slice(0, 12)} has ${parents.length === 0 ? 'no parent (a shallow clone, or the first commit)' : `only ${parents.length} parent${parents.length === 1 ? '' : 's'}`}`, { rev });
        oid = next;
      }
    }
    try {
      // An annotated tag points at a tag object; follow it to the commit.
      const read = await git.readCommit({ fs, gitdir: loc.gitdir, oid });
      return new CommitSource(loc, read.oid, read.commit.tree);
    } catch (err) {
      throw new GitError(`cannot read commit ${oid}: ${(err as Error).message}`, { rev, oid }, err);
    }
  }
}

/** What is staged: the content a `git commit` would record (pointers, after LFS's clean filter). */
export class IndexSource extends GitObjectSource {
  readonly description = 'index';
  private entries?: Promise<Map<string, string>>;

  /**
   * @param indexFile an index other than `<gitdir>/index`: git hands hooks a
   *   temporary one in GIT_INDEX_FILE for `git commit -a` and `git commit <paths>`.
   */
  constructor(loc: { dir: string; gitdir: string }, private readonly indexFile?: string) {
    super(loc);
  }

  private all(): Promise<Map<string, string>> {
    this.entries ??= (async () => {
      const map = new Map<string, string>();
      const files = await git.walk({
        fs: this.indexFile ? fsWithIndexFile(this.loc.gitdir, this.indexFile) : fs,
        dir: this.loc.dir!,
        gitdir: this.loc.gitdir,
        cache: this.cache,
        trees: [git.STAGE()],
        map: async (filepath, [entry]) => {
          if (!entry || filepath === '.') return undefined;
          if ((await entry.type()) === 'blob') map.set(filepath, await entry.oid());
          return filepath;
        },
      });
      void files;
      return map;
    })();
    return this.entries;
  }

  protected async lookup(path: string): Promise<{ oid: string; type: 'blob' | 'tree' } | null> {
    const all = await this.all();
    const oid = all.get(path);
    if (oid) return { oid, type: 'blob' };
    const prefix = `${path}/`;
    for (const k of all.keys()) if (k.startsWith(prefix)) return { oid: '', type: 'tree' };
    return null;
  }

  protected async children(dir: string): Promise<DirEntry[] | null> {
    const all = await this.all();
    const prefix = dir === '' ? '' : `${dir}/`;
    const seen = new Map<string, DirEntry['type']>();
    for (const k of all.keys()) {
      if (!k.startsWith(prefix)) continue;
      const rest = k.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) seen.set(rest, 'file');
      else seen.set(rest.slice(0, slash), 'dir');
    }
    if (seen.size === 0) return null;
    return [...seen].map(([name, type]) => ({ name, type })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/** The node fs, except that `<gitdir>/index` is read from `indexFile` (isomorphic-git has no option for it). */
function fsWithIndexFile(gitdir: string, indexFile: string): typeof fs {
  const target = resolve(gitdir, 'index');
  const map = (p: unknown): unknown => (typeof p === 'string' && resolve(p) === target ? indexFile : p);
  const base = fs.promises as unknown as Record<string, (...args: unknown[]) => unknown>;
  const promises: Record<string, unknown> = {};
  for (const key of Object.keys(base)) {
    const fn = base[key];
    if (typeof fn === 'function') promises[key] = (p: unknown, ...rest: unknown[]) => fn.call(fs.promises, map(p), ...rest);
  }
  return { promises } as unknown as typeof fs;
}

/** A raw tree object's entries (`<mode> <name>\0<20-byte oid>`…), names as stored. */
function parseTree(buf: Buffer, oid: string): Array<{ path: string; oid: string; type: string }> {
  const out: Array<{ path: string; oid: string; type: string }> = [];
  let at = 0;
  while (at < buf.length) {
    const space = buf.indexOf(0x20, at);
    const nul = space < 0 ? -1 : buf.indexOf(0, space);
    if (space < 0 || nul < 0 || nul + 21 > buf.length) throw new GitError(`tree ${oid} is corrupt at byte ${at}`, { oid });
    const mode = buf.subarray(at, space).toString('latin1');
    const type = mode === '40000' || mode === '040000' ? 'tree' : mode === '160000' ? 'commit' : 'blob';
    out.push({ path: buf.subarray(space + 1, nul).toString('utf8'), oid: buf.subarray(nul + 1, nul + 21).toString('hex'), type });
    at = nul + 21;
  }
  return out;
}

/** Find the git directory for a checkout or a bare repository. */
export async function findGitDir(repo: string): Promise<{ dir?: string; gitdir: string }> {
  const dotgit = join(repo, '.git');
  try {
    const st = await fsp.stat(dotgit);
    if (st.isDirectory()) return { dir: repo, gitdir: dotgit };
    // A .git file points elsewhere (worktrees, submodules).
    const text = await fsp.readFile(dotgit, 'utf8');
    const m = /^gitdir:\s*(.+)$/m.exec(text);
    // Relative to the checkout, or absolute (git worktree add writes absolute paths).
    if (m) return { dir: repo, gitdir: resolve(repo, m[1]!.trim()) };
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  try {
    await fsp.stat(join(repo, 'HEAD'));
    await fsp.stat(join(repo, 'objects'));
    return { gitdir: repo };
  } catch {
    throw new NotFoundError(`${repo} is not a Git repository (no .git, and not a bare repository)`, { repo });
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
