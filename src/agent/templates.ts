/**
 * Config files rendered from the registry's templates into `config_dir`.
 *
 * A template is rendered when its inputs change: the template text, the
 * versions of the models it names (all models when it names none) or the
 * site's labels; or when its output is missing. Each output is written
 * atomically and only when its bytes differ, so a service never reads half a
 * file and an unchanged config keeps its mtime. Destinations come from the
 * registry and are joined under config_dir with safeJoin: nothing outside it
 * can be written, whatever the site file says. Nor can a template overwrite
 * the agent's own files when they live there (agent.yaml, the token, the
 * webhook secret, the store) or anything a service command runs
 * (guarded-paths.ts): whoever merges to the registry decides versions, never
 * what the site executes. Outputs are plain data: mode 0644, never executable.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { ModelsyncError, errorMessage } from '../errors.ts';
import type { TemplateSpec } from '../registry/schema.ts';
import { readFileOrNull, writeFileAtomic } from '../util/fsutil.ts';
import { sha256Hex } from '../util/hash.ts';
import { safeJoin } from '../util/safe-path.ts';
import { RENDER_RECORD_FILE, compileTemplate, renderTemplate, reservedDestReason, type TemplateContext } from '../templates/index.ts';
import type { GuardedPath } from './guarded-paths.ts';

export type { TemplateContext };

/** Compiles and renders one template (src/templates, Jinja-compatible and sandboxed). */
export interface TemplateEngine {
  render(text: string, name: string, context: TemplateContext): string;
}

export const defaultEngine: TemplateEngine = {
  render: (text, name, context) => renderTemplate(compileTemplate(text, name), context),
};

export interface RenderJob {
  specs: readonly TemplateSpec[];
  /** Reads a template from the registry at the pass's commit; null when missing. */
  readSource(src: string): Promise<string | null>;
  context: TemplateContext;
  configDir: string;
  /** Render these even if their inputs look unchanged (the models switched in this pass). */
  changedModels?: ReadonlySet<string>;
  /**
   * Files (and directories, with everything below) a template must never write, whatever config_dir
   * holds: plain strings are the agent's own files; see guardedPaths() for the full set on a site.
   */
  protectedPaths?: ReadonlyArray<string | GuardedPath>;
}

export interface RenderOutcome {
  src: string;
  dest: string;
  /** written: new bytes in place; unchanged: rendered, same bytes; skipped: inputs unchanged; error: see message. */
  status: 'written' | 'unchanged' | 'skipped' | 'error';
  message?: string;
  /** Models the template depends on (for restarting the right services). */
  models: string[];
}

const INPUTS_FILE = RENDER_RECORD_FILE;
/** Rendered configs are data: readable by the services, executable by nobody. */
const OUTPUT_MODE = 0o644;

type InputsRecord = Record<string, string>;

export async function renderTemplates(job: RenderJob, engine: TemplateEngine = defaultEngine): Promise<RenderOutcome[]> {
  await fsp.mkdir(job.configDir, { recursive: true });
  const recordPath = join(job.configDir, INPUTS_FILE);
  const previous = await readRecord(recordPath);
  const next: InputsRecord = {};
  const out: RenderOutcome[] = [];
  const guarded = await guardList([...(job.protectedPaths ?? []), { path: recordPath, subtree: false, reason: 'the record of what was rendered' }]);
  for (const spec of job.specs) {
    const models = spec.models ?? Object.keys(job.context.models).sort();
    const base = { src: spec.src, dest: spec.dest, models };
    let dest: string;
    try {
      dest = safeJoin(job.configDir, spec.dest);
      const reserved = reservedDestReason(spec.dest);
      if (reserved) throw new Error(`${JSON.stringify(spec.dest)} is reserved: ${reserved}`);
    } catch (err) {
      out.push({ ...base, status: 'error', message: `dest ${errorMessage(err)}` });
      continue;
    }
    // Where the write would land, as written and really (directories inside config_dir may be symlinks).
    const landing = [dest, join(await realOrResolved(dirname(dest)), basename(dest))];
    const hit = guarded.find((g) => landing.some((l) => l === g.path || (g.subtree && l.startsWith(`${g.path}${sep}`))));
    if (hit !== undefined) {
      const verb = landing.some((l) => l === hit.path) ? 'would overwrite' : 'would write inside';
      out.push({ ...base, status: 'error', message: `dest ${JSON.stringify(spec.dest)} ${verb} ${hit.shown}, ${hit.reason}; templates never write what the site executes or the agent's own files` });
      continue;
    }
    let text: string | null;
    try {
      text = await job.readSource(spec.src);
    } catch (err) {
      out.push({ ...base, status: 'error', message: `cannot read ${spec.src}: ${errorMessage(err)}` });
      continue;
    }
    if (text === null) {
      out.push({ ...base, status: 'error', message: `${spec.src} does not exist in the registry` });
      continue;
    }
    const inputs = inputsKey(text, models, job.context);
    const existing = await readFileOrNull(dest);
    const changed = models.some((m) => job.changedModels?.has(m));
    if (!changed && existing !== null && previous[spec.dest] === inputs) {
      next[spec.dest] = inputs;
      out.push({ ...base, status: 'skipped' });
      continue;
    }
    let rendered: string;
    try {
      rendered = engine.render(text, spec.src, job.context);
    } catch (err) {
      // Keep the previous output and its record: the service goes on reading the last good config.
      if (previous[spec.dest] !== undefined) next[spec.dest] = previous[spec.dest]!;
      const message = err instanceof ModelsyncError ? err.message : `${spec.src}: ${errorMessage(err)}`;
      out.push({ ...base, status: 'error', message });
      continue;
    }
    try {
      if (existing !== null && existing.equals(Buffer.from(rendered))) {
        // Same bytes, but a rendered file is never left executable.
        if (((await fsp.stat(dest)).mode & 0o7777) !== OUTPUT_MODE) await fsp.chmod(dest, OUTPUT_MODE);
        out.push({ ...base, status: 'unchanged' });
      } else {
        await writeFileAtomic(dest, rendered, OUTPUT_MODE, { exactMode: true });
        out.push({ ...base, status: 'written' });
      }
      next[spec.dest] = inputs;
    } catch (err) {
      out.push({ ...base, status: 'error', message: `cannot write ${dest}: ${errorMessage(err)}` });
    }
  }
  if (JSON.stringify(next) !== JSON.stringify(previous)) await writeFileAtomic(recordPath, `${JSON.stringify(next, null, 2)}\n`);
  return out;
}

interface Guard {
  path: string;
  subtree: boolean;
  reason: string;
  /** The path as the agent was told it. */
  shown: string;
}

/** Each guarded path as given and as it really is (a symlinked script is guarded at both ends). */
async function guardList(paths: ReadonlyArray<string | GuardedPath>): Promise<Guard[]> {
  const out: Guard[] = [];
  for (const p of paths) {
    const g = typeof p === 'string' ? { path: p, subtree: true, reason: 'which belongs to the agent' } : p;
    const given = resolve(g.path);
    for (const path of new Set([given, await realOrResolved(given)])) out.push({ path, subtree: g.subtree, reason: g.reason, shown: given });
  }
  return out;
}

/** The real path of p, or of its deepest existing ancestor with the rest appended. */
async function realOrResolved(p: string): Promise<string> {
  const abs = resolve(p);
  try {
    return await fsp.realpath(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(await realOrResolved(parent), basename(abs));
  }
}

/** Everything a template's output depends on, hashed. */
function inputsKey(text: string, models: readonly string[], ctx: TemplateContext): string {
  const parts = models.map((m) => {
    const x = ctx.models[m];
    return x ? [m, x.version, x.dir, x.files.map((f) => [f.name, f.sha256])] : [m, null];
  });
  return sha256Hex(JSON.stringify([sha256Hex(text), parts, ctx.site]));
}

async function readRecord(path: string): Promise<InputsRecord> {
  const buf = await readFileOrNull(path);
  if (!buf) return {};
  try {
    const v = JSON.parse(buf.toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).filter(([, x]) => typeof x === 'string')) as InputsRecord;
    }
  } catch {
    // A damaged record only costs a re-render.
  }
  return {};
}
