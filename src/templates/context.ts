/**
 * What a template sees when a site renders it. The agent builds this from
 * the versions it activated; `validate` builds one per site with stand-in
 * directories to check that every template renders.
 */
import { posix } from 'node:path';

export interface TemplateFile {
  /** Path inside the version, as in the manifest (`facemodel.pickle`). */
  name: string;
  /** Absolute path on the site: `<dir>/<name>`. */
  path: string;
  sha256: string;
  size: number;
}

export interface TemplateModel {
  name: string;
  version: string;
  /** The directory holding the active version's files on the site. */
  dir: string;
  files: TemplateFile[];
}

export interface TemplateContext {
  site: { name: string; labels: Record<string, string> };
  /** By model name; only the models the site runs. */
  models: Record<string, TemplateModel>;
}

export interface TemplateContextInput {
  site: { name: string; labels?: Record<string, string> };
  models: Iterable<{ name: string; version: string; dir: string; files: ReadonlyArray<{ name: string; sha256: string; size: number }> }>;
}

export function templateContext(input: TemplateContextInput): TemplateContext {
  const models: Record<string, TemplateModel> = {};
  for (const m of input.models) {
    models[m.name] = {
      name: m.name,
      version: m.version,
      dir: m.dir,
      files: m.files.map((f) => ({ name: f.name, path: posix.join(m.dir, f.name), sha256: f.sha256, size: f.size })),
    };
  }
  return { site: { name: input.site.name, labels: { ...(input.site.labels ?? {}) } }, models };
}
