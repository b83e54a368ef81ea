/**
 * Load a registry snapshot from a source and check it: schemas first, then
 * the cross-file rules. Every problem is collected (never stop at the first)
 * and positioned at the file, line and column that causes it.
 */
import { validate as validateCron } from 'node-cron';
import { cronFloorProblem } from '../util/cron-floor.ts';
import type { Problem } from '../errors.ts';
import { ValidationError, errorMessage } from '../errors.ts';
import {
  MODEL_REGISTRY_FILE, REGISTRY_DIR, MANIFEST_NAME, SITES_DIR, GROUPS_DIR, CHUNKS_DIR,
  manifestPath, modelDir, versionFilePath, extendsPath, chunkIndexPath, chunkIndexRelPath, isReservedFileName,
} from './layout.ts';
import { z } from 'zod';
import {
  ManifestFile, ManifestFileEntry, ModelEntry, ModelRegistryFile, SiteFile, NAME_RE, VERSION_RE, RESERVED_VERSION_NAMES,
  type VersionScheme,
} from './schema.ts';
import type { RegistrySource } from './source.ts';
import { inferScheme, matchesScheme, schemeDescription, sortVersions } from './versions.ts';
import { parseYamlFile, type YamlFile, type YamlPath } from './yaml-file.ts';
import { zodProblems } from './zod-problems.ts';
import { desiredModels, modelPopulation, resolveSite } from './desired.ts';
import { checkPolicy, checkRollouts, loadRollouts, reservedModelName, type RolloutDoc } from './rollouts.ts';
import { TemplateError, compileTemplate, renderTemplate, templateContext, type Template } from '../templates/index.ts';

export interface VersionInfo {
  model: string;
  version: string;
  manifest: ManifestFile;
  /** Repo-relative path of manifest.yaml. */
  file: string;
  yaml: YamlFile;
}

export interface ModelInfo {
  name: string;
  /** The entry in model_registry.yaml; undefined for a model folder no entry declares (published, not released). */
  entry?: ModelEntry;
  /** Declared or inferred; null when the versions follow no single scheme. */
  scheme: VersionScheme | null;
  /** Versions whose manifest parsed, by version. */
  versions: Map<string, VersionInfo>;
  /** Version folders whose manifest is broken (reported already; not "missing"). */
  broken: Set<string>;
}

export interface SiteDoc {
  name: string;
  file: string;
  data: SiteFile;
  yaml: YamlFile;
}

export interface Registry {
  /** What was read ("commit 1a2b…", "working tree"). */
  description: string;
  commit?: string;
  models: Map<string, ModelInfo>;
  sites: Map<string, SiteDoc>;
  /** Group files by their `extends` reference (`groups/outposts`). */
  groups: Map<string, SiteDoc>;
  /** Staged rollouts in progress (registry/rollouts/<model>.yaml), by model. */
  rollouts: Map<string, RolloutDoc>;
  modelRegistryYaml?: YamlFile;
}

export interface LoadOptions {
  /**
   * Whether to check each file's bytes or pointer against its manifest.
   * Reconcile checks only what the site will fetch (and verifies bytes anyway);
   * `validate` checks everything.
   */
  checkContent?: boolean | ((model: string, version: string) => boolean);
}

export interface LoadResult {
  registry: Registry;
  problems: Problem[];
}

const at = (file: string, message: string, path = ''): Problem => ({ file, line: 1, col: 1, path, message });

/** readText, with a file too large to read turned into its problem (and treated as unreadable). */
async function readTextOrProblem(source: RegistrySource, file: string, problems: Problem[]): Promise<string | null | 'too-large'> {
  try {
    return await source.readText(file);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    problems.push(...err.problems);
    return 'too-large';
  }
}

async function readYaml(source: RegistrySource, file: string, problems: Problem[]): Promise<YamlFile | null> {
  const read = await readTextOrProblem(source, file, problems);
  // Too large: a stand-in with no value, so the file counts as present (not "missing") but says nothing.
  const text = read === 'too-large' ? '' : read;
  if (text === null) return null;
  const yf = parseYamlFile(file, text);
  problems.push(...yf.syntaxProblems);
  return yf;
}

export async function loadRegistry(source: RegistrySource, options: LoadOptions = {}): Promise<LoadResult> {
  const problems: Problem[] = [];
  const registry: Registry = { description: source.description, commit: source.commit, models: new Map(), sites: new Map(), groups: new Map(), rollouts: new Map() };

  // ---- model_registry.yaml ----
  const regYaml = await readYaml(source, MODEL_REGISTRY_FILE, problems);
  // A Map, not an object: a model folder called "constructor" must not find Object's.
  const declared = new Map<string, ModelEntry>();
  // Which model names it declares, as far as can be told. Missing or unparsable: unknown, so "model X
  // is not declared" on every site reference would bury the one real problem; those checks are skipped.
  // Off-schema: its keys under `models` still say which names are declared; entries that failed the
  // schema are `failed`, and only sites that use one of them skip the template dry-render.
  const known: DeclaredNames = { names: undefined, failed: new Set() };
  if (!regYaml) {
    problems.push(at(MODEL_REGISTRY_FILE, 'file is missing (every registry declares its models here)'));
  } else if (regYaml.value !== undefined) {
    registry.modelRegistryYaml = regYaml;
    const parsed = ModelRegistryFile.safeParse(regYaml.value ?? {});
    if (parsed.success) {
      for (const [name, entry] of Object.entries(parsed.data.models)) declared.set(name, entry);
      known.names = new Set(declared.keys());
    } else {
      problems.push(...zodProblems(regYaml, parsed.error));
      // Keep the entries that are fine, so cross-file rules still report on them.
      const raw = (regYaml.value as { models?: Record<string, unknown> } | null)?.models;
      if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
        known.names = new Set(Object.keys(raw));
        for (const [name, entry] of Object.entries(raw)) {
          // Unknown keys were reported already; the entry still declares its model for cross-references.
          const one = z.object(ModelEntry.shape).safeParse(entry);
          if (one.success && NAME_RE.test(name)) declared.set(name, one.data);
          else known.failed.add(name);
        }
      }
    }
  }

  // ---- registry/<model>/<version>/manifest.yaml ----
  const top = (await source.list(REGISTRY_DIR)) ?? [];
  const modelNames = new Set<string>(declared.keys());
  for (const ent of top) if (ent.type === 'dir' && !reservedModelName(ent.name)) modelNames.add(ent.name);

  for (const name of [...modelNames].sort()) {
    const info: ModelInfo = { name, entry: declared.get(name), scheme: null, versions: new Map(), broken: new Set() };
    registry.models.set(name, info);
    if (!NAME_RE.test(name)) {
      problems.push(at(`${modelDir(name)}/`, `model folder name ${JSON.stringify(name)} is not a valid model name`));
      continue;
    }
    const entries = await source.list(modelDir(name));
    for (const vent of entries ?? []) {
      if (vent.type !== 'dir') continue;
      await loadVersion(source, name, vent.name, info, problems, options);
    }
  }

  // ---- per-model rules: schemes, current and previous exist ----
  for (const info of registry.models.values()) checkModel(info, regYaml, problems);

  // ---- sites and groups ----
  await loadSiteDocs(source, SITES_DIR, registry.sites, problems, (n) => n);
  await loadSiteDocs(source, GROUPS_DIR, registry.groups, problems, (n) => `groups/${n}`);
  for (const site of registry.sites.values()) checkSite(registry, site, problems, known);
  for (const group of registry.groups.values()) checkSite(registry, group, problems, known);
  await checkTemplates(source, registry, problems, known);

  // ---- staged rollouts: files in progress and the policies in model_registry.yaml ----
  registry.rollouts = await loadRollouts(source, problems);
  const labelKeys = new Set<string>();
  for (const doc of [...registry.sites.values(), ...registry.groups.values()]) for (const k of Object.keys(doc.data.labels ?? {})) labelKeys.add(k);
  const rolloutCtx = {
    declared: (m: string) => (known.names === undefined ? undefined : known.names.has(m)),
    published: (m: string, v: string) => Boolean(registry.models.get(m)?.versions.has(v) || registry.models.get(m)?.broken.has(v)),
    population: (m: string) => modelPopulation(registry, m),
    labelKeys,
  };
  checkRollouts(registry.rollouts, rolloutCtx, problems);
  for (const info of registry.models.values()) {
    if (info.entry?.rollout && regYaml) checkPolicy(info.name, info.entry.rollout, regYaml, rolloutCtx, problems);
  }

  return { registry, problems: dedupe(problems) };
}

async function loadVersion(
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

function salvageManifest(raw: unknown): ManifestView {
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

async function checkVersionContent(
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
async function checkChunkIndex(
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
async function checkBlob(
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

function checkModel(info: ModelInfo, regYaml: YamlFile | null, problems: Problem[]): void {
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

async function loadSiteDocs(
  source: RegistrySource, dir: string, into: Map<string, SiteDoc>, problems: Problem[], key: (name: string) => string,
): Promise<void> {
  for (const ent of (await source.list(dir)) ?? []) {
    if (ent.type !== 'file') continue;
    const file = `${dir}/${ent.name}`;
    if (!/\.ya?ml$/.test(ent.name)) continue;
    const name = ent.name.replace(/\.ya?ml$/, '');
    if (ent.name.endsWith('.yml')) {
      problems.push(at(file, 'site files end in .yaml (this one would be ignored)'));
      continue;
    }
    if (!NAME_RE.test(name)) {
      problems.push(at(file, `${JSON.stringify(name)} is not a valid site or group name`));
      continue;
    }
    const yf = await readYaml(source, file, problems);
    if (!yf || yf.value === undefined) continue;
    const parsed = SiteFile.safeParse(yf.value ?? {});
    let data: SiteFile;
    if (parsed.success) data = parsed.data;
    else {
      problems.push(...zodProblems(yf, parsed.error));
      // The keys that are fine still get their cross-file checks (every problem at once).
      data = salvageSite(yf.value);
    }
    into.set(key(name), { name: key(name), file, data, yaml: yf });
  }
}

/** The top-level keys of a site file that pass the schema on their own. */
function salvageSite(raw: unknown): SiteFile {
  const obj = raw !== null && typeof raw === 'object' && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
  const out: Record<string, unknown> = {};
  for (const [k, schema] of Object.entries(SiteFile.shape)) {
    if (!Object.hasOwn(obj, k)) continue;
    const one = (schema as z.ZodType).safeParse(obj[k]);
    if (one.success && one.data !== undefined) out[k] = one.data;
  }
  return out as SiteFile;
}

/** What model_registry.yaml declares when it did not load whole (see loadRegistry). */
interface DeclaredNames {
  /** The names under `models`; undefined when the file is missing or unreadable. */
  names: Set<string> | undefined;
  /** Names whose entries failed the schema (declared, but not loaded). */
  failed: Set<string>;
}

function checkSite(registry: Registry, doc: SiteDoc, problems: Problem[], declaredNames: DeclaredNames): void {
  const { data, yaml } = doc;
  const known = (m: string): boolean => registry.models.get(m)?.entry !== undefined;
  const undeclared = (m: string): boolean => !known(m) && declaredNames.names !== undefined && !declaredNames.names.has(m);
  data.models?.forEach((m, i) => {
    if (undeclared(m)) problems.push(yaml.problem(['models', i], `model ${JSON.stringify(m)} is not declared in ${MODEL_REGISTRY_FILE}`));
  });
  for (const [m, v] of Object.entries(data.overrides ?? {})) {
    const info = registry.models.get(m);
    if (!info?.entry) {
      if (undeclared(m)) problems.push(yaml.problem(['overrides', m], `model ${JSON.stringify(m)} is not declared in ${MODEL_REGISTRY_FILE}`, { key: true }));
    } else if (!info.versions.has(v) && !info.broken.has(v)) {
      problems.push(yaml.problem(['overrides', m], `version ${JSON.stringify(v)} of ${m} is not published (${publishedList(info)})`));
    }
  }
  if (data.schedule !== undefined && !validateCron(data.schedule)) {
    problems.push(yaml.problem(['schedule'], `${JSON.stringify(data.schedule)} is not a valid cron expression (five or six fields, e.g. "*/15 * * * *")`));
  }
  const floor = data.schedule !== undefined ? cronFloorProblem(data.schedule) : undefined;
  if (floor) problems.push(yaml.problem(['schedule'], floor));
  // Within one file two templates writing the same file is a mistake (across extends, the site wins by design).
  const dests = new Map<string, number>();
  data.templates?.forEach((t, i) => {
    const prev = dests.get(t.dest);
    if (prev !== undefined) problems.push(yaml.problem(['templates', i, 'dest'], `${t.dest} is also written by templates[${prev}]`));
    else dests.set(t.dest, i);
    t.models?.forEach((m, j) => {
      if (undeclared(m)) problems.push(yaml.problem(['templates', i, 'models', j], `model ${JSON.stringify(m)} is not declared in ${MODEL_REGISTRY_FILE}`));
    });
  });
  // extends: every reference resolves, and following them never comes back here.
  data.extends?.forEach((ref, i) => {
    const target = ref.startsWith('groups/') ? registry.groups.get(ref) : registry.sites.get(ref);
    if (!target) problems.push(yaml.problem(['extends', i], `${JSON.stringify(ref)} does not resolve (expected ${extendsPath(ref)})`));
  });
  const cycle = findCycle(registry, doc.name);
  if (cycle) problems.push(yaml.problem(['extends'], `extends forms a cycle: ${cycle.join(' -> ')}`));
}

/** "published: 1, 2, 3" in version order, for a message about a version that is not. */
function publishedList(info: ModelInfo): string {
  const versions = [...info.versions.keys(), ...info.broken];
  if (versions.length === 0) return `no version of ${info.name} is published yet`;
  return `published: ${(info.scheme ? sortVersions(versions, info.scheme) : versions.sort()).join(', ')}`;
}

/** The cycle through `start`, if following `extends` from it returns to it. */
export function findCycle(registry: Registry, start: string): string[] | null {
  const lookup = (ref: string): SiteDoc | undefined => (ref.startsWith('groups/') ? registry.groups.get(ref) : registry.sites.get(ref));
  const path: string[] = [];
  const onPath = new Set<string>();
  const done = new Set<string>();
  const visit = (ref: string): string[] | null => {
    if (onPath.has(ref)) return ref === start ? [...path, ref] : null;
    if (done.has(ref)) return null;
    const doc = lookup(ref);
    if (!doc) return null;
    path.push(ref);
    onPath.add(ref);
    for (const next of doc.data.extends ?? []) {
      const c = visit(next);
      if (c) return c;
    }
    path.pop();
    onPath.delete(ref);
    done.add(ref);
    return null;
  };
  return visit(start);
}

/** Where the dry render of `validate` pretends a site's store is. */
const DRY_RUN_STORE = '/var/lib/modelsync';

/**
 * Every template a site or group names must exist and compile; then each
 * site's templates are rendered once against that site's models (with a
 * stand-in store path), so a template that reads a model the site does not
 * run, or misspells a key, fails here rather than on the site.
 */
async function checkTemplates(source: RegistrySource, registry: Registry, problems: Problem[], declaredNames: DeclaredNames): Promise<void> {
  const compiled = new Map<string, Template | 'missing' | 'broken'>();
  for (const doc of [...registry.sites.values(), ...registry.groups.values()]) {
    for (const [i, t] of (doc.data.templates ?? []).entries()) {
      if (!compiled.has(t.src)) {
        const text = await readTextOrProblem(source, t.src, problems);
        if (text === 'too-large') compiled.set(t.src, 'broken');
        else if (text === null) compiled.set(t.src, 'missing');
        else {
          try {
            compiled.set(t.src, compileTemplate(text, t.src));
          } catch (err) {
            if (!(err instanceof TemplateError)) throw err;
            problems.push({ file: t.src, line: err.line, col: err.col, path: '', message: err.reason });
            compiled.set(t.src, 'broken');
          }
        }
      }
      if (compiled.get(t.src) === 'missing') problems.push(doc.yaml.problem(['templates', i, 'src'], `template ${t.src} does not exist`));
    }
  }
  // Rendering against models that did not load would only report their absence again.
  if (declaredNames.names === undefined) return;
  for (const site of registry.sites.values()) {
    let resolved;
    let desired;
    try {
      resolved = resolveSite(registry, site.name);
      desired = desiredModels(registry, resolved);
    } catch {
      continue; // the site's own problems are reported already
    }
    const uses = (m: string): boolean => resolved.models === undefined || resolved.models.includes(m);
    if ([...declaredNames.failed].some(uses)) continue;
    const context = templateContext({
      site: { name: site.name, labels: resolved.labels },
      models: [...desired.values()].map((d) => ({
        name: d.model,
        version: d.version,
        dir: `${DRY_RUN_STORE}/models/${d.model}/${d.version}`,
        files: registry.models.get(d.model)?.versions.get(d.version)?.manifest.files ?? [],
      })),
    });
    for (const spec of resolved.templates) {
      const t = compiled.get(spec.src);
      if (!t || typeof t === 'string') continue;
      try {
        renderTemplate(t, context);
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        problems.push({ file: spec.src, line: err.line, col: err.col, path: '', message: `rendering for site ${site.name}: ${err.reason}` });
      }
    }
  }
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.file}:${p.line}:${p.col}:${p.path}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
