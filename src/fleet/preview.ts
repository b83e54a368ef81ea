/**
 * `modelsync plan`: what merging a change deploys where. Pure: (registry at
 * base, registry at head) → per affected site, each model's declared
 * version before and after with the bytes it costs, and the diff of every
 * rendered template that changes. Both sides are resolved with the same
 * desiredState the agent's reconcile planner uses, so a preview cannot
 * disagree with what the sites then do.
 *
 * Local pins are not known here (they live in each site's store): the plan
 * is for a site that runs what the registry declares.
 */
import type { Problem } from '../errors.ts';
import { errorMessage } from '../errors.ts';
import type { DesiredReason } from '../registry/desired.ts';
import type { Registry } from '../registry/load.ts';
import { compareVersions } from '../registry/versions.ts';
import { desiredState, type DesiredModelState, type SiteDesiredState } from './desired.ts';
import { unifiedDiff } from './diff.ts';
import { estimateFetch, type ChunkLookup, type FileFetch } from './estimate.ts';
import { DEFAULT_STORE, TemplateCache, renderSite, type RenderedTemplate } from './render.ts';

export interface PreviewSide {
  /** For people: "main 1a2b3c4d5e6f", "working tree". */
  label: string;
  commit?: string;
  registry: Registry;
  /** Text of every template the side's sites name (null: missing). */
  templates: ReadonlyMap<string, string | null>;
}

export interface PreviewInput {
  base: PreviewSide;
  head: PreviewSide;
  /** Head's validation problems, as `validate` reports them. */
  problems: readonly Problem[];
  /** Only these sites (default: every site of either side). */
  sites?: readonly string[];
  /** Store path templates are rendered with (default /var/lib/modelsync). */
  store?: string;
  chunks: ChunkLookup;
}

export type ChangeKind = 'install' | 'upgrade' | 'rollback' | 'remove' | 'change';

export interface ModelChange {
  model: string;
  from?: string;
  to?: string;
  kind: ChangeKind;
  /** Why the site gets `to` at head (current_version, or a site/group override). */
  reason?: DesiredReason;
  files: FileFetch[];
  /** Bytes of what the site lacks, downloaded whole. */
  full: number;
  /** Bytes with chunk deltas counted where both versions carry chunk indexes. */
  estimate: number;
  /** Some delta could not be estimated (an index missing here): `estimate` is an upper bound. */
  unknown: boolean;
}

export interface TemplateChange {
  src: string;
  dest: string;
  /** `diff -u` of the rendered output, base → head (empty when only an error changed). */
  diff: string;
  /** Head's render error: the site keeps its previous file. */
  error?: string;
  /** The site no longer declares it: agents do not delete a rendered file, so the last one stays. */
  dropped?: boolean;
}

export interface SitePreview {
  site: string;
  /** added: a new site file at head; removed: its file is gone at head. */
  status: 'changed' | 'added' | 'removed';
  models: ModelChange[];
  templates: TemplateChange[];
  /** Head cannot be resolved for this site (what its agent would report). */
  errors: string[];
  full: number;
  estimate: number;
}

export interface ChangePlan {
  base: { label: string; commit?: string };
  head: { label: string; commit?: string };
  /** Affected sites, by name. */
  sites: SitePreview[];
  /** Sites considered (after --site) that nothing changes for. */
  unaffected: number;
  total: number;
  problems: Problem[];
  /** Distinct bytes over all affected sites (each site fetches its own copy). */
  full: number;
  estimate: number;
}

export function planChange(input: PreviewInput): ChangePlan {
  const store = input.store ?? DEFAULT_STORE;
  const baseTemplates = new TemplateCache(input.base.templates);
  const headTemplates = new TemplateCache(input.head.templates);
  const names = input.sites ?? [...new Set([...input.base.registry.sites.keys(), ...input.head.registry.sites.keys()])].sort();
  const sites: SitePreview[] = [];
  for (const site of names) {
    const p = previewSite(site, input, store, baseTemplates, headTemplates);
    if (p) sites.push(p);
  }
  return {
    base: { label: input.base.label, commit: input.base.commit },
    head: { label: input.head.label, commit: input.head.commit },
    sites,
    unaffected: names.length - sites.length,
    total: names.length,
    problems: [...input.problems],
    full: sites.reduce((n, s) => n + s.full, 0),
    estimate: sites.reduce((n, s) => n + s.estimate, 0),
  };
}

function resolveSide(registry: Registry, site: string): { state?: SiteDesiredState; error?: string } {
  if (!registry.sites.has(site)) return {};
  try {
    return { state: desiredState(registry, site) };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

function previewSite(site: string, input: PreviewInput, store: string, baseT: TemplateCache, headT: TemplateCache): SitePreview | null {
  const base = resolveSide(input.base.registry, site);
  const head = resolveSide(input.head.registry, site);
  const inBase = input.base.registry.sites.has(site);
  const inHead = input.head.registry.sites.has(site);
  const status: SitePreview['status'] = !inBase && inHead ? 'added' : inBase && !inHead ? 'removed' : 'changed';
  // The agent of a site whose file is gone fails its passes ("not declared") and keeps running what it has.
  if (status === 'removed') head.error = `sites/${site}.yaml is removed: its agent changes nothing and reports the site as not declared`;
  const errors = head.error ? [head.error] : [];

  const models: ModelChange[] = [];
  // A head that does not resolve changes nothing on the site (its agent refuses the commit).
  if (!head.error) {
    const before = new Map((base.state?.models ?? []).map((m) => [m.model, m]));
    const after = new Map((head.state?.models ?? []).map((m) => [m.model, m]));
    const held = new Set<string>();
    for (const m of before.values()) for (const f of m.files ?? []) held.add(f.oid);
    for (const model of [...new Set([...before.keys(), ...after.keys()])].sort()) {
      const change = modelChange(model, before.get(model), after.get(model), held, input.chunks);
      if (change) models.push(change);
    }
  }
  const templates = head.error ? [] : templateChanges(base.state, head.state, baseT, headT, store);
  if (models.length === 0 && templates.length === 0 && errors.length === 0 && status === 'changed') return null;
  return {
    site, status, models, templates, errors,
    full: models.reduce((n, m) => n + m.full, 0),
    estimate: models.reduce((n, m) => n + m.estimate, 0),
  };
}

function modelChange(model: string, from: DesiredModelState | undefined, to: DesiredModelState | undefined, held: ReadonlySet<string>, chunks: ChunkLookup): ModelChange | null {
  if (from && to && from.version === to.version && sameFiles(from, to)) return null;
  const est = estimateFetch(held, from?.files ?? [], to?.files ?? [], chunks);
  const base = { model, from: from?.version, to: to?.version, reason: to?.reason, files: est.files, full: est.full, estimate: est.estimate, unknown: est.unknown };
  if (!to) return { ...base, kind: 'remove' };
  if (!from) return { ...base, kind: 'install' };
  return { ...base, kind: kindOf(from.version, to) };
}

function kindOf(from: string, to: DesiredModelState): ChangeKind {
  if (from === to.version || !to.scheme) return 'change';
  try {
    const c = compareVersions(to.version, from, to.scheme);
    return c > 0 ? 'upgrade' : c < 0 ? 'rollback' : 'change';
  } catch {
    return 'change'; // a version off the scheme (head is invalid then): no order to claim
  }
}

function sameFiles(a: DesiredModelState, b: DesiredModelState): boolean {
  const fa = a.files ?? [];
  const fb = b.files ?? [];
  return fa.length === fb.length && fa.every((f, i) => f.name === fb[i]!.name && f.oid === fb[i]!.oid);
}

function templateChanges(base: SiteDesiredState | undefined, head: SiteDesiredState | undefined, baseT: TemplateCache, headT: TemplateCache, store: string): TemplateChange[] {
  const before = new Map<string, RenderedTemplate>((base ? renderSite(base, baseT, store) : []).map((r) => [r.dest, r]));
  const after = new Map<string, RenderedTemplate>((head ? renderSite(head, headT, store) : []).map((r) => [r.dest, r]));
  const out: TemplateChange[] = [];
  for (const dest of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const b = before.get(dest);
    const a = after.get(dest);
    if (!a) {
      out.push({ src: b!.src, dest, diff: '', dropped: true });
      continue;
    }
    if (a.error !== undefined) {
      // The site keeps the file it has: no diff to show, but the failure is news unless base failed the same way.
      if (b?.error !== a.error) out.push({ src: a.src, dest, diff: '', error: a.error });
      continue;
    }
    const oldText = b?.text ?? null;
    if (oldText === a.text) continue;
    out.push({ src: a.src, dest, diff: unifiedDiff(oldText, a.text!, { a: `a/${dest}`, b: `b/${dest}` }) });
  }
  return out;
}
