/**
 * What a site should run: its file merged over the groups it extends, then
 * its selection, overrides and local pins applied to what the registry
 * declares. Pure: no I/O, so the planner's inputs are easy to build in tests.
 */
import { NotFoundError, ValidationError } from '../errors.ts';
import { resolveRollout, type RolloutSite } from './rollout-waves.ts';
import { siteFilePath } from './layout.ts';
import type { Registry, SiteDoc } from './load.ts';
import type { MaintenanceWindow, SiteFile, TemplateSpec } from './schema.ts';

export const DEFAULT_RETENTION_KEEP = 3;

export interface ResolvedSite {
  name: string;
  labels: Record<string, string>;
  /** Selected models; undefined selects every declared model. */
  models?: string[];
  overrides: Record<string, string>;
  schedule?: string;
  retention: { keep: number };
  bandwidth?: { limit_kbps: number };
  templates: TemplateSpec[];
  /** Maintenance windows; empty = the site may switch any time. */
  windows: MaintenanceWindow[];
}

/**
 * Merge rules, in `extends` order and the site last (later wins):
 * maps (labels, overrides, retention, bandwidth) merge key by key; templates
 * merge by destination; everything else (models, schedule) is replaced.
 */
export function resolveSite(registry: Registry, site: string): ResolvedSite {
  const doc = registry.sites.get(site);
  if (!doc) throw new NotFoundError(`site ${JSON.stringify(site)} is not declared in the registry (no ${siteFilePath(site)})`, { site });
  const merged = mergeChain(registry, doc);
  return {
    name: site,
    labels: merged.labels ?? {},
    models: merged.models,
    overrides: merged.overrides ?? {},
    schedule: merged.schedule,
    retention: { keep: merged.retention?.keep ?? DEFAULT_RETENTION_KEEP },
    bandwidth: merged.bandwidth,
    templates: merged.templates ?? [],
    windows: merged.windows ?? [],
  };
}

function mergeChain(registry: Registry, doc: SiteDoc): SiteFile {
  let acc: SiteFile = {};
  for (const d of siteChain(registry, doc.name)) {
    const own = { ...d.data };
    delete own.extends;
    acc = mergeSite(acc, own);
  }
  return acc;
}

/**
 * The files a site is merged from, in merge order (later wins): each
 * `extends` entry's own chain depth first, then the site itself. Exposed so
 * `modelsync sites` can say which file set a value without a second copy of
 * the order.
 */
export function siteChain(registry: Registry, site: string): SiteDoc[] {
  const doc = registry.sites.get(site);
  if (!doc) throw new NotFoundError(`site ${JSON.stringify(site)} is not declared in the registry (no ${siteFilePath(site)})`, { site });
  const out: SiteDoc[] = [];
  walkChain(registry, doc, new Set(), out);
  return out;
}

function walkChain(registry: Registry, doc: SiteDoc, visiting: Set<string>, out: SiteDoc[]): void {
  if (visiting.has(doc.name)) {
    throw new ValidationError([doc.yaml.problem(['extends'], `extends forms a cycle through ${doc.name}`)]);
  }
  visiting.add(doc.name);
  for (const ref of doc.data.extends ?? []) {
    const parent = ref.startsWith('groups/') ? registry.groups.get(ref) : registry.sites.get(ref);
    if (!parent) throw new ValidationError([doc.yaml.problem(['extends'], `${JSON.stringify(ref)} does not resolve`)]);
    walkChain(registry, parent, visiting, out);
  }
  visiting.delete(doc.name);
  out.push(doc);
}

export function mergeSite(base: SiteFile, over: SiteFile): SiteFile {
  const out: SiteFile = { ...base, ...over };
  if (base.labels || over.labels) out.labels = { ...base.labels, ...over.labels };
  if (base.overrides || over.overrides) out.overrides = { ...base.overrides, ...over.overrides };
  if (base.retention || over.retention) out.retention = { ...base.retention, ...over.retention } as SiteFile['retention'];
  if (base.bandwidth || over.bandwidth) out.bandwidth = { ...base.bandwidth, ...over.bandwidth } as SiteFile['bandwidth'];
  if (base.templates || over.templates) {
    const byDest = new Map<string, TemplateSpec>();
    for (const t of [...(base.templates ?? []), ...(over.templates ?? [])]) byDest.set(t.dest, t);
    out.templates = [...byDest.values()];
  }
  delete out.extends;
  return out;
}

export type DesiredReason = 'current' | 'override' | 'pin';

export interface DesiredModel {
  model: string;
  version: string;
  /** What the registry's model_registry.yaml declares, whatever the site does with it. */
  declared: string;
  reason: DesiredReason;
  /** Under a staged rollout: the wave that selects the site (if any) and whether it is reached. */
  rollout?: { wave?: string; reached: boolean; status: string };
}

/** The sites that run `model` (select it, or select everything), with their merged labels; sites that do not resolve are left out. */
export function modelPopulation(registry: Registry, model: string): RolloutSite[] {
  const out: RolloutSite[] = [];
  for (const name of [...registry.sites.keys()].sort()) {
    let site: ResolvedSite;
    try {
      site = resolveSite(registry, name);
    } catch {
      continue; // its own problems are reported where it is validated
    }
    if (site.models === undefined || site.models.includes(model)) out.push({ name, labels: site.labels });
  }
  return out;
}

/**
 * The version each selected model should run on this site. A local pin wins
 * over a site override, which wins over current_version.
 */
export function desiredModels(registry: Registry, site: ResolvedSite, pins: Record<string, string> = {}): Map<string, DesiredModel> {
  const out = new Map<string, DesiredModel>();
  const selected = site.models ?? [...registry.models.values()].filter((m) => m.entry).map((m) => m.name);
  for (const model of [...selected].sort()) {
    const info = registry.models.get(model);
    if (!info?.entry) throw new NotFoundError(`site ${site.name} selects model ${JSON.stringify(model)}, which the registry does not declare`, { model });
    // A staged rollout decides between its `from` and `version` for this site (src/registry/rollout-waves.ts).
    const rollout = registry.rollouts?.get(model)?.data;
    const placed = rollout ? resolveRollout(rollout, site.name, modelPopulation(registry, model)) : undefined;
    const declared = placed?.version ?? info.entry.current_version;
    const extra = placed && rollout ? { rollout: { ...(placed.wave ? { wave: placed.wave } : {}), reached: placed.reached, status: rollout.state.status } } : {};
    // Own keys only: a model may be called "constructor" or "toString".
    const pin = Object.hasOwn(pins, model) ? pins[model] : undefined;
    const override = Object.hasOwn(site.overrides, model) ? site.overrides[model] : undefined;
    if (pin !== undefined) out.set(model, { model, version: pin, declared, reason: 'pin' });
    else if (override !== undefined) out.set(model, { model, version: override, declared, reason: 'override' });
    else out.set(model, { model, version: declared, declared, reason: 'current', ...extra });
  }
  return out;
}
