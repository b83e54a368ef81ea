/**
 * A site's templates rendered as its agent renders them once it runs its
 * desired state: the same engine (src/templates, which the agent's
 * defaultEngine wraps), the same context (site name and labels; per model its
 * version, `<store>/models/<model>/<version>` and its files), the store path
 * given. Pure: template texts are read by the caller and passed in.
 */
import { posix } from 'node:path';
import type { TemplateSpec } from '../registry/schema.ts';
import { TemplateError, compileTemplate, renderTemplate, templateContext, type Template, type TemplateContext } from '../templates/index.ts';
import type { SiteDesiredState } from './desired.ts';

/** Where agents keep their store unless agent.yaml says otherwise (DESIGN.md "Agent config"). */
export const DEFAULT_STORE = '/var/lib/modelsync';

export interface RenderedTemplate {
  src: string;
  dest: string;
  /** The output, when it rendered. */
  text?: string;
  /** Why it did not render (missing source, syntax, a failing expression). */
  error?: string;
}

/**
 * The context the agent builds for a site in sync: every selected model at
 * its desired version (a model whose version is not published is left out,
 * as the agent leaves out a model with nothing active).
 */
export function siteTemplateContext(state: SiteDesiredState, store: string = DEFAULT_STORE): TemplateContext {
  const models = state.models
    .filter((m) => m.files !== undefined)
    .map((m) => ({
      name: m.model,
      version: m.version,
      dir: posix.join(store, 'models', m.model, m.version),
      files: m.files!.map((f) => ({ name: f.name, sha256: f.oid, size: f.size })),
    }));
  return templateContext({ site: { name: state.site.name, labels: state.site.labels }, models });
}

/** Compiled templates by source path; shared across sites and both sides of a plan (a template compiles once). */
export class TemplateCache {
  private readonly compiled = new Map<string, Template | TemplateError | null>();
  constructor(private readonly texts: ReadonlyMap<string, string | null>) {}

  get(src: string): Template | TemplateError | null {
    if (!this.compiled.has(src)) {
      const text = this.texts.get(src) ?? null;
      let t: Template | TemplateError | null = null;
      if (text !== null) {
        try {
          t = compileTemplate(text, src);
        } catch (err) {
          if (!(err instanceof TemplateError)) throw err;
          t = err;
        }
      }
      this.compiled.set(src, t);
    }
    return this.compiled.get(src)!;
  }
}

export function renderSite(state: SiteDesiredState, templates: TemplateCache, store: string = DEFAULT_STORE): RenderedTemplate[] {
  const context = siteTemplateContext(state, store);
  return state.site.templates.map((spec: TemplateSpec): RenderedTemplate => {
    const t = templates.get(spec.src);
    if (t === null) return { src: spec.src, dest: spec.dest, error: `${spec.src} does not exist in the registry` };
    if (t instanceof TemplateError) return { src: spec.src, dest: spec.dest, error: t.message };
    try {
      return { src: spec.src, dest: spec.dest, text: renderTemplate(t, context) };
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      return { src: spec.src, dest: spec.dest, error: err.message };
    }
  });
}

/** Every template source a registry's sites and groups name, to read once before rendering. */
export function templateSources(registry: { sites: ReadonlyMap<string, { data: { templates?: TemplateSpec[] } }>; groups: ReadonlyMap<string, { data: { templates?: TemplateSpec[] } }> }): string[] {
  const out = new Set<string>();
  for (const doc of [...registry.sites.values(), ...registry.groups.values()]) for (const t of doc.data.templates ?? []) out.add(t.src);
  return [...out].sort();
}
