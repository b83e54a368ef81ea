/**
 * agent.yaml rules for `serving:` and `health: {infer: ...}` that the schema
 * cannot express: paths relative to the file, one view per model and per
 * directory, and the runtime URL an inference check defaults to.
 */
import { isAbsolute, resolve } from 'node:path';
import type { Problem } from '../errors.ts';
import type { AgentConfigFile } from '../registry/schema.ts';

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * Paths in the file are relative to the file: a view's `dir` and `config`,
 * an inference check's `request`. `runtime_dir` is the server's own view
 * (inside its container), so it is left as written.
 */
export function resolveServingPaths(raw: Record<string, unknown>, fileDir: string): void {
  const abs = (o: Record<string, unknown>, key: string): void => {
    if (typeof o[key] === 'string' && o[key] !== '' && !isAbsolute(o[key])) o[key] = resolve(fileDir, o[key]);
  };
  if (Array.isArray(raw.serving)) for (const v of raw.serving) if (isObject(v)) ['dir', 'config'].forEach((k) => abs(v, k));
  if (Array.isArray(raw.services)) {
    for (const s of raw.services) if (isObject(s) && isObject(s.health) && isObject(s.health.infer)) abs(s.health.infer, 'request');
  }
}

/**
 * Problems with views and inference checks, each at its path. Fills each
 * inference check's `url` from the view that lists its model when not given.
 */
export function servingProblems(cfg: AgentConfigFile, at: (path: Array<string | number>, message: string) => Problem): Problem[] {
  const out: Problem[] = [];
  const byModel = new Map<string, number>();
  const dirs = new Map<string, number>();
  cfg.serving.forEach((v, i) => {
    const d = resolve(v.dir);
    if (dirs.has(d)) out.push(at(['serving', i, 'dir'], `${v.dir} is already the dir of serving[${dirs.get(d)}]: one view per directory`));
    dirs.set(d, i);
    v.models.forEach((m, j) => {
      if (byModel.has(m)) out.push(at(['serving', i, 'models', j], `model ${m} is already served by serving[${byModel.get(m)}]: a model has one view (its version numbers are that view's)`));
      else byModel.set(m, i);
    });
    if (resolve(cfg.store).startsWith(`${d}/`) || d.startsWith(`${resolve(cfg.store)}/`) || d === resolve(cfg.store)) {
      out.push(at(['serving', i, 'dir'], `${v.dir} overlaps the store ${cfg.store}: give the view a directory of its own (on the same filesystem, for hard links)`));
    }
  });
  cfg.services.forEach((s, i) => {
    const infer = s.health?.infer;
    if (!infer) return;
    if (!infer.url) {
      const v = byModel.get(infer.model);
      const url = v === undefined ? undefined : cfg.serving[v]!.url;
      if (url) infer.url = url;
      else out.push(at(['services', i, 'health', 'infer'], `url is required: no serving view with a url lists model ${infer.model}`));
    }
    for (const name of Object.keys(infer.expect.values ?? {})) {
      if (!(name in infer.expect.outputs)) out.push(at(['services', i, 'health', 'infer', 'expect', 'values', name], `output ${name} is not in expect.outputs (give its shape there)`));
    }
  });
  return out;
}
