/**
 * Load a registry snapshot from a source and check it: schemas first, then
 * the cross-file rules. Every problem is collected (never stop at the first)
 * and positioned at the file, line and column that causes it.
 */
import type { Problem } from '../errors.ts';
import { MODEL_REGISTRY_FILE, REGISTRY_DIR, SITES_DIR, GROUPS_DIR, modelDir } from './layout.ts';
import { z } from 'zod';
import { ModelEntry, ModelRegistryFile, NAME_RE } from './schema.ts';
import type { RegistrySource } from './source.ts';
import { treeNameProblems, withoutUnsafeNames } from './tree-names.ts';
import { zodProblems } from './zod-problems.ts';
import { modelPopulation } from './desired.ts';
import { checkPolicy, checkRollouts, loadRollouts, reservedModelName } from './rollouts.ts';
import { at, readYaml } from './load-read.ts';
import { checkModel, loadVersion } from './load-versions.ts';
import { checkSite, checkTemplates, loadSiteDocs, type DeclaredNames } from './load-sites.ts';
import type { LoadOptions, LoadResult, ModelInfo, Registry } from './load-types.ts';

export type { LoadOptions, LoadResult, ModelInfo, Registry, SiteDoc, VersionInfo } from './load-types.ts';
export { findCycle } from './load-sites.ts';

export async function loadRegistry(raw: RegistrySource, options: LoadOptions = {}): Promise<LoadResult> {
  const problems: Problem[] = await treeNameProblems(raw);
  const source = withoutUnsafeNames(raw);
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

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.file}:${p.line}:${p.col}:${p.path}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
