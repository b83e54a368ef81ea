/**
 * A model's versions: each manifest, its files and chunk indexes against what
 * the snapshot holds, and the model entry's references to them.
 */
import type { Problem } from '../errors.ts';
import { errorMessage } from '../errors.ts';
import { MANIFEST_NAME, CHUNKS_DIR, manifestPath, modelDir, versionFilePath, chunkIndexPath, chunkIndexRelPath, isReservedFileName } from './layout.ts';
import { ManifestFile, ManifestFileEntry, VERSION_RE, RESERVED_VERSION_NAMES } from './schema.ts';
import type { RegistrySource } from './source.ts';
import { inferScheme, matchesScheme, schemeDescription, sortVersions } from './versions.ts';
import type { YamlFile, YamlPath } from './yaml-file.ts';
import { zodProblems } from './zod-problems.ts';
import { at, readYaml } from './load-read.ts';
import type { LoadOptions, ModelInfo } from './load-types.ts';

export async function loadVersion(
  source: RegistrySource, model: string, version: string, info: ModelInfo, problems: Problem[], options: LoadOptions,
): Promise<void> {
  const file = manifestPath(model, version);
  const folder = `${modelDir(model)}/${version}/`;
  if (!VERSION_RE.test(version) || RESERVED_VERSION_NAMES.has(version)) {
    problems.push(at(folder, `version folder name ${JSON.stringify(version)} is not a valid version`));
    return;
  }
  const yf = await readYaml(source, file, problems);
  if (!yf) {
    problems.push(at(folder, `version folder has no ${MANIFEST_NAME}`));
    info.broken.add(version);
    return;
  }
  if (yf.value === undefined) {
    info.broken.add(version);
    return;
  }
  const parsed = ManifestFile.safeParse(yf.value ?? {});
  let view: ManifestView;
  if (parsed.success) {
    info.versions.set(version, { model, version, manifest: parsed.data, file, yaml: yf });
    view = {
      name: parsed.data.name, version: parsed.data.version, files: parsed.data.files.map((f, i) => ({ i, f })),
      listed: parsed.data.files.map((f) => f.name), chunked: parsed.data.files.filter((f) => f.chunks).map((f) => f.name),
    };
  } else {
    problems.push(...zodProblems(yf, parsed.error));
    info.broken.add(version);
    // Keep checking what did parse: every problem at once, not one schema error hiding the rest.
    view = salvageManifest(yf.value);
  }
  if (view.name !== undefined && view.name !== model) problems.push(yf.problem(['name'], `is ${JSON.stringify(view.name)} but the manifest is in the folder of model ${JSON.stringify(model)}`));
  if (view.version !== undefined && view.version !== version) problems.push(yf.problem(['version'], `is ${JSON.stringify(view.version)} but the manifest is in folder ${JSON.stringify(version)}`));

  // File names: unique (also ignoring case, or a checkout on macOS/Windows loses one), not the manifest itself.
  const seen = new Map<string, number>();
  for (const { i, f } of view.files) {
    const folded = f.name.toLowerCase();
    const prev = seen.get(folded);
    if (prev !== undefined) problems.push(yf.problem(['files', i, 'name'], `duplicate file name ${JSON.stringify(f.name)} (also files[${prev}])`));
    else seen.set(folded, i);
    // Folded too: on macOS and Windows "Manifest.yaml" is the manifest.
    if (folded === MANIFEST_NAME) problems.push(yf.problem(['files', i, 'name'], `"${MANIFEST_NAME}" is reserved for the manifest itself`));
    if (isReservedFileName(f.name)) problems.push(yf.problem(['files', i, 'name'], `${JSON.stringify(f.name)} is inside "${CHUNKS_DIR}/", which is reserved for the chunk indexes publish writes`));
  }
  // A file that is also a directory prefix of another cannot exist on disk.
  const names = new Set(view.files.map(({ f }) => f.name));
  for (const { i, f } of view.files) {
    const parts = f.name.split('/');
    for (let k = 1; k < parts.length; k++) {
      if (names.has(parts.slice(0, k).join('/'))) {
        problems.push(yf.problem(['files', i, 'name'], `${JSON.stringify(f.name)} lies inside ${JSON.stringify(parts.slice(0, k).join('/'))}, which is a file`));
        break;
      }
    }
  }

  const check = typeof options.checkContent === 'function' ? options.checkContent(model, version) : (options.checkContent ?? true);
  if (check) await checkVersionContent(source, model, version, view, yf, problems);
}

/** A manifest as far as it could be read: its file entries keep their index in `files` for positions. */
interface ManifestView {
  name?: string;
  version?: string;
  files: Array<{ i: number; f: ManifestFileEntry }>;
  /** Every name the manifest lists, also of entries that failed the schema (they are not "unlisted"). */
  listed: string[];
  /** Names of the entries that have a `chunks` key (schema-valid or not): their index file is not stray. */
  chunked: string[];
}

export function salvageManifest(raw: unknown): ManifestView {
  const obj = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const name = ManifestFile.shape.name.safeParse(obj.name);
  const version = ManifestFile.shape.version.safeParse(obj.version);
  const files: ManifestView['files'] = [];
  const listed: string[] = [];
  const chunked: string[] = [];
  if (Array.isArray(obj.files)) {
    obj.files.forEach((entry: unknown, i) => {
      const one = ManifestFileEntry.safeParse(entry);
      if (one.success) files.push({ i, f: one.data });
      const n = (entry as { name?: unknown } | null)?.name;
      if (typeof n === 'string') listed.push(n);
      if (typeof n === 'string' && (entry as { chunks?: unknown }).chunks !== undefined) chunked.push(n);
    });
  }
  return { name: name.success ? name.data : undefined, version: version.success ? version.data : undefined, files, listed, chunked };
}

export async function checkVersionContent(
  source: RegistrySource, model: string, version: string, m: ManifestView, yf: YamlFile, problems: Problem[],
): Promise<void> {
  for (const { i, f } of m.files) {
    const path = versionFilePath(model, version, f.name);
    await checkBlob(source, path, f, { file: ['files', i, 'name'], sha256: ['files', i, 'sha256'], size: ['files', i, 'size'] }, `file ${path} is missing`, yf, problems);
  }
  for (const { i, f } of m.files) if (f.chunks) await checkChunkIndex(source, model, version, i, f, yf, problems);
  // Files in the version folder that the manifest does not list were probably forgotten.
  const listed = new Set(m.listed);
  // Chunk indexes are expected only where an entry's `chunks` names one (checked above).
  const indexes = new Set(m.chunked.map(chunkIndexRelPath));
  const stack: string[] = [''];
  while (stack.length) {
    const rel = stack.pop()!;
    const entries = await source.list(`${modelDir(model)}/${version}${rel ? `/${rel}` : ''}`);
    for (const e of entries ?? []) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const inChunks = r.split('/')[0] === CHUNKS_DIR;
      if (e.type === 'dir') {
        if ([...listed, ...indexes].some((n) => n.startsWith(`${r}/`))) stack.push(r);
        else if (inChunks) problems.push(yf.problem(['files'], `${modelDir(model)}/${version}/${r}/ holds no chunk index a file of the manifest names (${CHUNKS_DIR}/ is reserved for them)`));
        else problems.push(yf.problem(['files'], `${modelDir(model)}/${version}/${r}/ is not listed in the manifest`));
      } else if (inChunks) {
        if (!indexes.has(r)) {
          problems.push(yf.problem(['files'], `${modelDir(model)}/${version}/${r} is not the chunk index of any file in the manifest (no entry's chunks names it; ${CHUNKS_DIR}/ is reserved for them)`));
        }
      } else if (r !== MANIFEST_NAME && !listed.has(r) && !r.endsWith('.md') && r !== '.gitattributes') {
        problems.push(yf.problem(['files'], `${modelDir(model)}/${version}/${r} is not listed in the manifest`));
      }
    }
  }
}

/**
 * An entry's `chunks` names its chunk index: an LFS pointer at
 * `.chunks/<name>.cdc` in the version folder, with that oid and size (sites
 * fetch the index from LFS by them; the commit carries the pointer so a
 * stock `git push` uploads the object).
 */
export async function checkChunkIndex(
  source: RegistrySource, model: string, version: string, i: number, f: ManifestFileEntry, yf: YamlFile, problems: Problem[],
): Promise<void> {
  const chunks = f.chunks!;
  const path = chunkIndexPath(model, version, f.name);
  await checkBlob(
    source, path, { sha256: chunks.oid, size: chunks.size },
    { file: ['files', i, 'chunks'], sha256: ['files', i, 'chunks', 'oid'], size: ['files', i, 'chunks', 'size'] },
    `names a chunk index, but ${path} is missing (publish writes it; remove chunks or add the index)`, yf, problems,
  );
}

/**
 * Whether `path` holds what the manifest says: an LFS pointer with that oid
 * and size, or (a smudged checkout, after git lfs pull) the content itself.
 * `at` names the manifest fields each kind of mismatch is reported at.
 */
export async function checkBlob(
  source: RegistrySource, path: string, want: { sha256: string; size: number },
  at: { file: YamlPath; sha256: YamlPath; size: YamlPath }, missing: string, yf: YamlFile, problems: Problem[],
): Promise<void> {
  let content;
  try {
    content = await source.inspect(path);
  } catch (err) {
    problems.push(yf.problem(at.file, `cannot read ${path}: ${errorMessage(err)}`));
    return;
  }
  if (!content) {
    problems.push(yf.problem(at.file, missing));
    return;
  }
  if (content.kind === 'pointer') {
    if (content.pointer.oid !== want.sha256) problems.push(yf.problem(at.sha256, `does not match the LFS pointer in ${path} (oid sha256:${content.pointer.oid})`));
    if (content.pointer.size !== want.size) problems.push(yf.problem(at.size, `is ${want.size} but the LFS pointer in ${path} says ${content.pointer.size}`));
  } else if (content.size !== want.size) {
    problems.push(yf.problem(at.size, `is ${want.size} but ${path} has ${content.size} bytes`));
  } else {
    const digest = await content.digest();
    if (digest.sha256 !== want.sha256) problems.push(yf.problem(at.sha256, `does not match the content of ${path} (sha256 ${digest.sha256})`));
  }
}

export function checkModel(info: ModelInfo, regYaml: YamlFile | null, problems: Problem[]): void {
  const versions = [...info.versions.keys()];
  const entry = info.entry;
  const pathOf = (k: string): Array<string> => ['models', info.name, k];
  if (entry?.version_scheme) {
    info.scheme = entry.version_scheme;
    for (const v of versions) {
      if (!matchesScheme(v, entry.version_scheme)) {
        const vi = info.versions.get(v)!;
        problems.push(vi.yaml.problem(['version'], `${JSON.stringify(v)} does not follow the model's version_scheme ${entry.version_scheme} (${schemeDescription(entry.version_scheme)})`));
      }
    }
  } else if (versions.length > 0) {
    info.scheme = inferScheme(versions);
    if (!info.scheme) {
      const where = regYaml && entry ? regYaml.problem(['models', info.name], '') : at(`${modelDir(info.name)}/`, '');
      problems.push({
        ...where,
        path: where.path,
        message: `versions of ${info.name} follow no single scheme (date, integer or semver): ${sortVersions(versions, 'date').join(', ')}; rename them or set version_scheme`,
      });
    }
  }
  if (!entry || !regYaml) return;
  for (const key of ['current_version', 'previous_version'] as const) {
    const v = entry[key];
    if (v === undefined) continue;
    if (!info.versions.has(v) && !info.broken.has(v)) {
      problems.push(regYaml.problem(pathOf(key), `version ${JSON.stringify(v)} of ${info.name} is not published (no ${manifestPath(info.name, v)})`));
    }
  }
}

