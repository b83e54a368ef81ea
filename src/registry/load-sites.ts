/**
 * Sites and groups: each site file, its extends chain, the models and
 * versions it names, and a dry render of its templates.
 */
import { validate as validateCron } from 'node-cron';
import { cronFloorProblem } from '../util/cron-floor.ts';
import type { Problem } from '../errors.ts';
import { MODEL_REGISTRY_FILE, extendsPath } from './layout.ts';
import { z } from 'zod';
import { SiteFile, NAME_RE } from './schema.ts';
import type { RegistrySource } from './source.ts';
import { cronProblem } from '../util/cron.ts';
import { sortVersions } from './versions.ts';
import { zodProblems } from './zod-problems.ts';
import { desiredModels, resolveSite } from './desired.ts';
import { TemplateError, compileTemplate, renderTemplate, reservedDestReason, templateContext, type Template } from '../templates/index.ts';
import { at, readTextOrProblem, readYaml } from './load-read.ts';
import type { ModelInfo, Registry, SiteDoc } from './load-types.ts';

export async function loadSiteDocs(
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
export function salvageSite(raw: unknown): SiteFile {
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
export interface DeclaredNames {
  /** The names under `models`; undefined when the file is missing or unreadable. */
  names: Set<string> | undefined;
  /** Names whose entries failed the schema (declared, but not loaded). */
  failed: Set<string>;
}

export function checkSite(registry: Registry, doc: SiteDoc, problems: Problem[], declaredNames: DeclaredNames): void {
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
  const cronWhy = data.schedule === undefined ? null : cronProblem(data.schedule) ?? (validateCron(data.schedule) ? null : 'node-cron cannot parse it');
  if (cronWhy) problems.push(yaml.problem(['schedule'], `${JSON.stringify(data.schedule)} is not a valid cron expression (${cronWhy})`));
  const floor = data.schedule !== undefined && !cronWhy ? cronFloorProblem(data.schedule) : undefined;
  if (floor) problems.push(yaml.problem(['schedule'], floor));
  // Within one file two templates writing the same file is a mistake (across extends, the site wins by design).
  const dests = new Map<string, number>();
  data.templates?.forEach((t, i) => {
    const prev = dests.get(t.dest);
    if (prev !== undefined) problems.push(yaml.problem(['templates', i, 'dest'], `${t.dest} is also written by templates[${prev}]`));
    else dests.set(t.dest, i);
    const reserved = reservedDestReason(t.dest);
    if (reserved) problems.push(yaml.problem(['templates', i, 'dest'], `${JSON.stringify(t.dest)} is reserved: ${reserved}`));
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
export function publishedList(info: ModelInfo): string {
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
export const DRY_RUN_STORE = '/var/lib/modelsync';

/**
 * Every template a site or group names must exist and compile; then each
 * site's templates are rendered once against that site's models (with a
 * stand-in store path), so a template that reads a model the site does not
 * run, or misspells a key, fails here rather than on the site.
 */
export async function checkTemplates(source: RegistrySource, registry: Registry, problems: Problem[], declaredNames: DeclaredNames): Promise<void> {
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

