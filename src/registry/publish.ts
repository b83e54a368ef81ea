/**
 * Publishing a version: hash and cache each file as a git-lfs object, write
 * pointers and the manifest, promote it, validate the result and commit.
 * Versions are immutable: publishing over an existing one is refused.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { NotFoundError, UsageError } from '../errors.ts';
import { unsafeRelativePathReason } from '../util/safe-path.ts';
import { promoteInText } from './edit-registry.ts';
import { blobAt, commitChanges, commitTreeOid, currentBranch, branchHead, openWorkRepo, readBlobText, type WorkRepo } from './git-repo.ts';
import { MANIFEST_NAME, MODEL_REGISTRY_FILE, manifestPath, versionDir, versionFilePath } from './layout.ts';
import { addToLfsCache, type CachedObject } from './lfs-cache.ts';
import { formatPointer } from './lfs-pointer.ts';
import { ModelName, ModelRegistryFile, Version } from './schema.ts';
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
}

export interface PublishedFile {
  name: string;
  sha256: string;
  size: number;
  /** "lfs" (pointer + cached object) or "blob" (small text kept in Git). */
  storage: 'lfs' | 'blob';
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

/** Kept in Git as plain blobs: the .gitattributes init writes excludes these from LFS. */
const PLAIN_BLOB_RE = /\.(ya?ml|md)$/i;

export async function publishVersion(req: PublishRequest): Promise<PublishResult> {
  const model = parseOr(ModelName, req.model, 'model name');
  const version = parseOr(Version, req.version, 'version');
  if (req.files.length === 0) throw new UsageError('publish needs at least one file');
  const inputs = await checkInputs(req.files);

  const repo = await openWorkRepo(req.repoDir);
  const branch = await currentBranch(repo);
  const head = await branchHead(repo, branch);
  const tree = head ? await commitTreeOid(repo, head) : null;
  const registryText = await readRegistryAtHead(repo, tree);
  if ((await blobAt(repo, tree, manifestPath(model, version))) || (await pathExists(resolve(repo.dir, versionDir(model, version))))) {
    throw new UsageError(`${model} ${version} already exists (${versionDir(model, version)}); versions are immutable, publish a new version instead`, { model, version });
  }
  const current = currentVersionOf(registryText, model);

  // Hash and cache first: nothing in the working tree changes until every file is safely stored.
  const cached: CachedObject[] = [];
  const files: PublishedFile[] = [];
  const changes: Array<{ path: string; content: string | Uint8Array | null }> = [];
  try {
    for (const input of inputs) {
      const path = versionFilePath(model, version, input.name);
      if (PLAIN_BLOB_RE.test(input.name)) {
        const bytes = await fsp.readFile(input.path);
        files.push({ name: input.name, sha256: hashBytes(bytes).sha256, size: bytes.length, storage: 'blob' });
        changes.push({ path, content: bytes });
      } else {
        const obj = await addToLfsCache(repo.gitdir, input.path);
        cached.push(obj);
        files.push({ name: input.name, sha256: obj.oid, size: obj.size, storage: 'lfs' });
        changes.push({ path, content: formatPointer(obj) });
      }
      const want = req.expectSha256?.[input.name];
      const got = files[files.length - 1]!.sha256;
      if (want && want !== got) throw new UsageError(`${input.path} hashes to ${got}, expected ${want}`, { file: input.path });
    }

    changes.push({
      path: manifestPath(model, version),
      content: manifestText({
        model, version, files, previous: current,
        framework: req.framework, source: req.source, description: req.description,
        trainingMetrics: req.trainingMetrics, dateDeployed: req.dateDeployed ?? new Date().toISOString().slice(0, 10),
        schemaComment: await pathExists(resolve(repo.dir, 'schemas/manifest.schema.json')),
      }),
    });

    let promoted = false;
    let createdModel = false;
    if (req.promote) {
      const edit = promoteInText(registryText, model, version, { create: true });
      changes.push({ path: MODEL_REGISTRY_FILE, content: edit.text });
      promoted = true;
      createdModel = edit.created;
    }

    const subject = req.message ?? `Publish ${model} ${version}${promoted ? '' : ' (not promoted)'}`;
    const body = promoted
      ? `\n\n${current ? `Promote ${model} ${version} (previous: ${current}).` : `New model ${model}, current version ${version}.`}`
      : '';
    const result = await commitChanges(repo, { message: `${subject}${req.message ? '' : body}`, changes, env: req.env, what: `refusing to publish ${model} ${version}` });
    return {
      model, version, commit: result.commit, branch: result.branch, files, promoted, createdModel,
      previous: promoted ? current : undefined,
      objects: cached.map((o) => ({ oid: o.oid, size: o.size, path: o.path })),
    };
  } catch (err) {
    // Objects this publish added are referenced by nothing now; do not leave them behind.
    for (const o of cached) {
      if (!o.added) continue;
      await fsp.rm(o.path, { force: true }).catch(() => {});
      // The aa/bb fan-out directories too, when this object was their only one.
      await fsp.rmdir(dirname(o.path)).catch(() => {});
      await fsp.rmdir(dirname(dirname(o.path))).catch(() => {});
    }
    throw err;
  }
}

function parseOr<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: Array<{ message: string }> } } }, value: string, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) throw new UsageError(`invalid ${what} ${JSON.stringify(value)}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  return r.data;
}

async function checkInputs(paths: string[]): Promise<Array<{ path: string; name: string }>> {
  const seen = new Map<string, string>();
  const out: Array<{ path: string; name: string }> = [];
  for (const p of paths) {
    const full = resolve(p);
    let st;
    try {
      st = await fsp.stat(full);
    } catch {
      throw new NotFoundError(`${p} does not exist`, { file: p });
    }
    if (!st.isFile()) throw new UsageError(`${p} is not a regular file`, { file: p });
    const name = basename(full);
    const why = unsafeRelativePathReason(name);
    if (why) throw new UsageError(`file name ${JSON.stringify(name)} ${why}`, { file: p });
    if (name === MANIFEST_NAME) throw new UsageError(`a file may not be named ${MANIFEST_NAME} (the version's manifest has that name)`, { file: p });
    const folded = name.toLowerCase();
    if (seen.has(folded)) throw new UsageError(`two files would be stored as ${JSON.stringify(name)}: ${seen.get(folded)} and ${p}`, { file: p });
    seen.set(folded, p);
    out.push({ path: full, name });
  }
  return out;
}

async function readRegistryAtHead(repo: WorkRepo, tree: string | null): Promise<string> {
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
  for (const f of m.files) lines.push(`  - name: ${name(f.name)}`, `    sha256: ${hex(f.sha256)}`, `    size: ${f.size}`);
  if (m.previous !== undefined) lines.push(`previous_version: ${q(m.previous)}`);
  return `${lines.join('\n')}\n`;
}

