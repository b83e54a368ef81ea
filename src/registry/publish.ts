/**
 * Publishing a version: hash and cache each file as a git-lfs object, write
 * pointers and the manifest, promote it, validate the result and commit.
 * Versions are immutable: publishing over an existing one is refused.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import git from 'isomorphic-git';
import { UsageError } from '../errors.ts';
import { unsafeRelativePathReason } from '../util/safe-path.ts';
import { promoteInText } from './edit-registry.ts';
import {
  acquireRepoLock, blobAt, branchHead, commitOnBranch, commitTreeOid, currentBranch, openWorkRepo, readBlobText, type FileChange, type WorkRepo,
} from './git-repo.ts';
import { checkInterrupted } from './interrupt.ts';
import { CHUNKS_DIR, MANIFEST_NAME, MODEL_REGISTRY_FILE, REGISTRY_DIR, chunkIndexPath, isReservedFileName, manifestPath, versionDir, versionFilePath } from './layout.ts';
import { addBehaviour, normaliseForAdd } from './gitattributes.ts';
import { addToLfsCache, type CachedObject } from './lfs-cache.ts';
import { MAX_CHUNK_INDEX_BYTES } from '../lfs/cdc.ts';
import { MAX_POINTER_SIZE, formatPointer, parsePointer } from './lfs-pointer.ts';
import { ModelName, ModelRegistryFile, Version, VersionScheme } from './schema.ts';
import { inferScheme, matchesScheme, schemeDescription, sortVersions } from './versions.ts';
import { parseYamlFile } from './yaml-file.ts';
import { pathExists } from '../util/fsutil.ts';
import { hashBytes } from '../util/hash.ts';

export interface PublishRequest {
  repoDir: string;
  model: string;
  version: string;
  /** Paths of the files to publish; each is stored under its base name. */
  files: string[];
  promote: boolean;
  framework?: string;
  source?: string;
  description?: string;
  trainingMetrics?: Record<string, unknown>;
  /** Defaults to today (UTC). */
  dateDeployed?: string;
  message?: string;
  env: NodeJS.ProcessEnv;
  /** Refuse unless each file hashes to this (by base name); init uses it to check the example. */
  expectSha256?: Record<string, string>;
  /** Ctrl-C: stops hashing and undoes it; see interrupt.ts. */
  signal?: AbortSignal;
  /** Sign the commit (`--sign`). */
  sign?: (payload: string) => Promise<string>;
}

export interface PublishedFile {
  name: string;
  sha256: string;
  size: number;
  /** "lfs" (pointer + cached object) or "blob" (small text kept in Git). */
  storage: 'lfs' | 'blob';
  /** The chunk index LFS object (manifest `files[].chunks`), for files of CHUNK_INDEX_MIN_SIZE and more. */
  chunks?: { oid: string; size: number };
}

export interface PublishResult {
  model: string;
  version: string;
  commit: string;
  branch: string;
  files: PublishedFile[];
  promoted: boolean;
  /** The version that was current before, when this publish promoted over one. */
  previous?: string;
  /** A model that had no entry in model_registry.yaml got one. */
  createdModel: boolean;
  /** LFS objects this publish added to the local cache (for --push). */
  objects: Array<{ oid: string; size: number; path: string }>;
}

/** A plain blob is read into memory to be committed; anything this big belongs in LFS. */
const MAX_PLAIN_BLOB = 16 << 20;

/**
 * Files this large get a chunk index, so a site holding an earlier version
 * fetches only the changed byte ranges. It is the size from which sites try
 * a delta at all (lfs/http-fetcher.ts deltaMinBytes): an index for a smaller
 * file would be stored, pushed and never used. Below it a delta cannot pay
 * anyway: a site attempts one only when it can reuse at least 1 MiB, and it
 * costs an extra object, pointer and request plus reading the local
 * candidates whole, to save a few seconds of transfer at most.
 */
export const CHUNK_INDEX_MIN_SIZE = 4 << 20;

/** What this publish put in the LFS cache for one input file (to undo or re-check). */
interface CachedInput {
  input: string;
  file: CachedObject;
  /** Its chunk index, when one was made. */
  index?: CachedObject;
  wantIndex: boolean;
}

export async function publishVersion(req: PublishRequest): Promise<PublishResult> {
  const model = parseOr(ModelName, req.model, 'model name');
  const version = parseOr(Version, req.version, 'version');
  if (req.files.length === 0) throw new UsageError('publish needs at least one file');
  const inputs = await checkInputs(req.files);

  // Refuse what can be refused before hashing what may be gigabytes; checked again under the lock.
  const repo = await openWorkRepo(req.repoDir);
  const branch = await currentBranch(repo);
  const head = await branchHead(repo, branch);
  const tree = head ? await commitTreeOid(repo, head) : null;
  await checkNewVersion(repo, tree, await readRegistryAt(repo, tree), model, version);

  // Hash and cache first: nothing in the working tree changes until every file is safely stored.
  const cached: CachedInput[] = [];
  const files: PublishedFile[] = [];
  const contents: Array<{ path: string; content: string | Uint8Array }> = [];
  try {
    for (const input of inputs) {
      checkInterrupted(req.signal);
      const path = versionFilePath(model, version, input.name);
      // As `git add` would store it, per .gitattributes: otherwise git status shows it modified and git lfs fsck fails.
      const how = await addBehaviour(repo.dir, path);
      // git-lfs's clean filter leaves an empty file empty (a size-0 pointer fails git lfs fsck as non-canonical).
      if (!how.lfs || input.size === 0) {
        const bytes = normaliseForAdd(await readStable(input.path, path), how);
        files.push({ name: input.name, sha256: hashBytes(bytes).sha256, size: bytes.length, storage: 'blob' });
        contents.push({ path, content: bytes });
      } else {
        // The index is an LFS object too: only where .gitattributes sends its path to LFS (a registry made by
        // init sends all of registry/ there; one tracking only "*.bin" does not, and gets no delta).
        const indexPath = chunkIndexPath(model, version, input.name);
        const wantIndex = input.size >= CHUNK_INDEX_MIN_SIZE && (await addBehaviour(repo.dir, indexPath)).lfs;
        const obj = await addToLfsCache(repo.gitdir, input.path, indexOptions(wantIndex, req.signal));
        cached.push({ input: input.path, file: obj, index: obj.chunkIndex, wantIndex });
        const chunks = obj.chunkIndex ? { oid: obj.chunkIndex.oid, size: obj.chunkIndex.size } : undefined;
        files.push({ name: input.name, sha256: obj.oid, size: obj.size, storage: 'lfs', ...(chunks ? { chunks } : {}) });
        contents.push({ path, content: formatPointer(obj) });
        if (chunks) contents.push({ path: indexPath, content: formatPointer(chunks) });
      }
      const want = req.expectSha256?.[input.name];
      const got = files[files.length - 1]!.sha256;
      if (want && want !== got) throw new UsageError(`${input.path} hashes to ${got}, expected ${want}`, { file: input.path });
    }
    const schemaComment = await pathExists(resolve(repo.dir, 'schemas/manifest.schema.json'));

    const result = await commitOnBranch(repo, {
      env: req.env, signal: req.signal, sign: req.sign, what: `refusing to publish ${model} ${version}`,
      // Under the lock, from the branch as it is now: another publish or promote may have landed while we hashed.
      prepare: async (base) => {
        const registryText = await readRegistryAt(repo, base.tree);
        await checkNewVersion(repo, base.tree, registryText, model, version);
        await ensureCached(repo, cached, req.signal);
        const current = currentVersionOf(registryText, model);
        const changes: FileChange[] = [...contents];
        changes.push({
          path: manifestPath(model, version),
          content: manifestText({
            model, version, files, previous: current,
            framework: req.framework, source: req.source, description: req.description,
            trainingMetrics: req.trainingMetrics, dateDeployed: req.dateDeployed ?? new Date().toISOString().slice(0, 10), schemaComment,
          }),
        });
        let createdModel = false;
        // A model with a rollout policy is staged by `promote` (src/rollout/), never switched everywhere by a publish.
        const promote = req.promote && !hasRolloutPolicy(registryText, model);
        if (promote) {
          const edit = promoteInText(registryText, model, version, { create: true });
          changes.push({ path: MODEL_REGISTRY_FILE, content: edit.text });
          createdModel = edit.created;
        }
        const subject = req.message ?? `Publish ${model} ${version}${promote ? '' : ' (not promoted)'}`;
        const body = promote
          ? `\n\n${current ? `Promote ${model} ${version} (previous: ${current}).` : `New model ${model}, current version ${version}.`}`
          : '';
        return { message: `${subject}${req.message ? '' : body}`, changes, extra: { current, createdModel, promote } };
      },
    });
    return {
      model, version, commit: result.commit, branch: result.branch, files, promoted: result.extra.promote, createdModel: result.extra.createdModel,
      previous: result.extra.promote ? result.extra.current : undefined,
      objects: cachedObjects(cached).map((o) => ({ oid: o.oid, size: o.size, path: o.path })),
    };
  } catch (err) {
    await forgetObjects(repo, cachedObjects(cached));
    throw err;
  }
}

/**
 * Objects this publish added to the cache are referenced by nothing once it
 * fails. They are removed under the repository lock, so a concurrent
 * publish of the same content (which found them there) is not robbed; if
 * the lock is busy they stay, harmless, for `git lfs prune`.
 */
async function forgetObjects(repo: WorkRepo, cached: CachedObject[]): Promise<void> {
  const added = cached.filter((o) => o.added);
  if (added.length === 0) return;
  let release: (() => Promise<void>) | undefined;
  try {
    release = await acquireRepoLock(repo, 0);
  } catch {
    return;
  }
  try {
    for (const o of added) {
      await fsp.rm(o.path, { force: true }).catch(() => {});
      // The aa/bb fan-out directories too, when this object was their only one.
      await fsp.rmdir(dirname(o.path)).catch(() => {});
      await fsp.rmdir(dirname(dirname(o.path))).catch(() => {});
    }
  } finally {
    await release();
  }
}

function indexOptions(wantIndex: boolean, signal?: AbortSignal): Parameters<typeof addToLfsCache>[2] {
  return { signal, chunkIndex: wantIndex ? { maxIndexBytes: MAX_CHUNK_INDEX_BYTES } : undefined };
}

function cachedObjects(cached: CachedInput[]): CachedObject[] {
  return cached.flatMap((c) => (c.index ? [c.file, c.index] : [c.file]));
}

/** Under the lock: every object this publish relies on is still in the cache (a failed concurrent publish may have removed one). */
async function ensureCached(repo: WorkRepo, cached: CachedInput[], signal?: AbortSignal): Promise<void> {
  for (const c of cached) {
    if ((await pathExists(c.file.path)) && (!c.index || (await pathExists(c.index.path)))) continue;
    const again = await addToLfsCache(repo.gitdir, c.input, indexOptions(c.wantIndex, signal));
    if (again.oid !== c.file.oid || again.chunkIndex?.oid !== c.index?.oid) {
      throw new UsageError(`${c.input} changed while it was being published; publish it again`, { file: c.input });
    }
    c.file.added ||= again.added;
    if (c.index && again.chunkIndex) c.index.added ||= again.chunkIndex.added;
  }
}

/** A small file read whole, refused if it changes meanwhile (see addToLfsCache). */
async function readStable(path: string, dest: string): Promise<Buffer> {
  const before = await fsp.stat(path);
  if (before.size > MAX_PLAIN_BLOB) {
    throw new UsageError(
      `${path} is ${before.size} bytes, and .gitattributes keeps ${dest} in Git as a plain file (not LFS), which takes at most ${MAX_PLAIN_BLOB} bytes: ` +
        'give it a name .gitattributes sends to LFS (git lfs track), or shrink it',
      { file: path },
    );
  }
  const bytes = await fsp.readFile(path);
  const after = await fsp.stat(path);
  if (after.size !== bytes.length || after.mtimeMs !== before.mtimeMs || after.ino !== before.ino) {
    throw new UsageError(`${path} changed while it was being read; publish it once it is complete`, { file: path });
  }
  return bytes;
}

/**
 * The version must be new, and fit the model's scheme: the declared
 * version_scheme, or the one every published version already follows.
 * Refused here as a usage error, before any hashing, rather than by
 * validation after it.
 */
async function checkNewVersion(repo: WorkRepo, tree: string | null, registryText: string, model: string, version: string): Promise<void> {
  if ((await blobAt(repo, tree, manifestPath(model, version))) || (await pathExists(resolve(repo.dir, versionDir(model, version))))) {
    throw new UsageError(`${model} ${version} already exists (${versionDir(model, version)}); versions are immutable, publish a new version instead`, { model, version });
  }
  const declared = declaredScheme(registryText, model);
  if (declared) {
    if (!matchesScheme(version, declared)) {
      throw new UsageError(`version ${JSON.stringify(version)} does not follow ${model}'s version_scheme ${declared} (${schemeDescription(declared)})`, { model, version });
    }
    return;
  }
  const published = await versionFolders(repo, tree, model);
  if (inferScheme([...published, version])) return;
  const theirs = inferScheme(published);
  if (published.length === 0) {
    throw new UsageError(`version ${JSON.stringify(version)} follows no version scheme: use a date (YYYY-MM-DD, optionally .N), an integer or a semantic version (1.2.3)`, { model, version });
  }
  if (theirs) {
    throw new UsageError(
      `version ${JSON.stringify(version)} does not follow the ${theirs} scheme of ${model}'s published versions (${schemeDescription(theirs)}; published: ${sortVersions(published, theirs).join(', ')})`,
      { model, version },
    );
  }
  // The published versions are mixed already: validation reports that, positioned.
}

async function versionFolders(repo: WorkRepo, tree: string | null, model: string): Promise<string[]> {
  if (!tree) return [];
  let cur = tree;
  for (const part of [REGISTRY_DIR, model]) {
    const ent = (await git.readTree({ fs, gitdir: repo.gitdir, oid: cur })).tree.find((e) => e.path === part && e.type === 'tree');
    if (!ent) return [];
    cur = ent.oid;
  }
  return (await git.readTree({ fs, gitdir: repo.gitdir, oid: cur })).tree.filter((e) => e.type === 'tree').map((e) => e.path);
}

function declaredScheme(registryText: string, model: string): VersionScheme | undefined {
  const models = (parseYamlFile(MODEL_REGISTRY_FILE, registryText).value as { models?: unknown } | undefined)?.models;
  if (!models || typeof models !== 'object' || !Object.hasOwn(models, model)) return undefined;
  const scheme = VersionScheme.safeParse(((models as Record<string, unknown>)[model] as { version_scheme?: unknown } | null)?.version_scheme);
  return scheme.success ? scheme.data : undefined;
}

function parseOr<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ message: string }> } } }, value: string, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UsageError(`invalid ${what} ${JSON.stringify(value)}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

async function checkInputs(paths: string[]): Promise<Array<{ path: string; name: string; size: number }>> {
  const seen = new Map<string, string>();
  const out: Array<{ path: string; name: string; size: number }> = [];
  for (const p of paths) {
    const full = resolve(p);
    let st;
    try {
      st = await fsp.stat(full);
    } catch {
      throw new UsageError(`${p} does not exist`, { file: p });
    }
    if (!st.isFile()) throw new UsageError(`${p} is not a regular file${st.isDirectory() ? ' (a directory: give the files in it)' : ''}`, { file: p });
    const name = basename(full);
    const why = unsafeRelativePathReason(name);
    if (why) throw new UsageError(`file name ${JSON.stringify(name)} ${why}`, { file: p });
    if (name.toLowerCase() === MANIFEST_NAME) throw new UsageError(`a file may not be named ${MANIFEST_NAME} (the version's manifest has that name)`, { file: p });
    if (isReservedFileName(name)) throw new UsageError(`a file may not be named ${CHUNKS_DIR} (publish keeps chunk indexes in the version folder of that name)`, { file: p });
    const folded = name.toLowerCase();
    if (seen.has(folded)) throw new UsageError(`two files would be stored as ${JSON.stringify(name)}: ${seen.get(folded)} and ${p}`, { file: p });
    seen.set(folded, p);
    // A checkout without git-lfs holds pointers where the models should be: publishing one would ship the pointer.
    if (st.size <= MAX_POINTER_SIZE && parsePointer(await fsp.readFile(full))) {
      throw new UsageError(
        `${p} is a Git LFS pointer, not the file itself (the checkout it comes from has not fetched its LFS content: run git lfs pull there)`,
        { file: p },
      );
    }
    out.push({ path: full, name, size: st.size });
  }
  return out;
}

async function readRegistryAt(repo: WorkRepo, tree: string | null): Promise<string> {
  const oid = await blobAt(repo, tree, MODEL_REGISTRY_FILE);
  if (oid) return readBlobText(repo, oid);
  if (!tree) throw new UsageError(`${repo.dir} has no commits; create a registry with \`modelsync init\``);
  throw new UsageError(`${repo.dir} is not a modelsync registry (no ${MODEL_REGISTRY_FILE} at HEAD); create one with \`modelsync init\``);
}

/** The model's current_version at HEAD, if it has an entry. */
export function currentVersionOf(registryText: string, model: string): string | undefined {
  const yf = parseYamlFile(MODEL_REGISTRY_FILE, registryText);
  const parsed = ModelRegistryFile.safeParse(yf.value ?? {});
  const models = parsed.success ? parsed.data.models : (yf.value as { models?: Record<string, { current_version?: unknown }> } | undefined)?.models;
  if (!models || typeof models !== 'object' || !Object.hasOwn(models, model)) return undefined;
  const raw = (models[model] as { current_version?: unknown } | null)?.current_version;
  return raw === undefined || raw === null ? undefined : String(raw);
}

interface ManifestInput {
  model: string;
  version: string;
  files: PublishedFile[];
  previous?: string;
  framework?: string;
  source?: string;
  description?: string;
  trainingMetrics?: Record<string, unknown>;
  dateDeployed: string;
  schemaComment: boolean;
}

/**
 * The manifest, written by hand rather than by a YAML library so its layout
 * is stable and reviewable. Strings are JSON-quoted (valid YAML, and never
 * re-read as a number, a boolean or a YAML 1.1 date).
 */
export function manifestText(m: ManifestInput): string {
  const q = (s: string): string => JSON.stringify(s);
  // Names read better plain; anything YAML could read as another type is quoted.
  const name = (s: string): string => (/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(s) && !/^(true|false|null|yes|no|on|off|y|n)$/i.test(s) ? s : q(s));
  const hex = (s: string): string => (/^[0-9]*e?[0-9]*$/.test(s) ? q(s) : s);
  const lines: string[] = [];
  if (m.schemaComment) lines.push('# yaml-language-server: $schema=../../../schemas/manifest.schema.json');
  lines.push(`name: ${name(m.model)}`, `version: ${q(m.version)}`);
  if (m.framework !== undefined) lines.push(`framework: ${q(m.framework)}`);
  if (m.source !== undefined) lines.push(`source: ${q(m.source)}`);
  if (m.description !== undefined) lines.push(`description: ${q(m.description)}`);
  lines.push(`date_deployed: ${q(m.dateDeployed)}`);
  if (m.trainingMetrics !== undefined) lines.push(`training_metrics: ${JSON.stringify(m.trainingMetrics)}`);
  lines.push('files:');
  for (const f of m.files) {
    lines.push(`  - name: ${name(f.name)}`, `    sha256: ${hex(f.sha256)}`, `    size: ${f.size}`);
    if (f.chunks) lines.push(`    chunks: {oid: ${hex(f.chunks.oid)}, size: ${f.chunks.size}}`);
  }
  if (m.previous !== undefined) lines.push(`previous_version: ${q(m.previous)}`);
  return `${lines.join('\n')}\n`;
}


/** Whether the model's entry in model_registry.yaml has a `rollout:` policy (then promote stages it). */
function hasRolloutPolicy(registryText: string, model: string): boolean {
  const models = (parseYamlFile(MODEL_REGISTRY_FILE, registryText).value as { models?: Record<string, unknown> } | null)?.models;
  if (!models || typeof models !== 'object' || !Object.hasOwn(models, model)) return false;
  const entry = models[model] as { rollout?: unknown } | null;
  return Boolean(entry && typeof entry === 'object' && entry.rollout);
}
