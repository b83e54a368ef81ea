/**
 * `modelsync render --site s`: the site's templates rendered as its agent
 * renders them once in sync (fleet/render.ts: the agent's engine and
 * context), printed, or written under --out (mode 0644, joined safely).
 */
import { NotFoundError, UsageError, formatProblem } from '../errors.ts';
import { desiredState } from '../fleet/desired.ts';
import { escapeControl } from '../fleet/plan-format.ts';
import { DEFAULT_STORE, TemplateCache, renderSite } from '../fleet/render.ts';
import { openSource, resolveRepoDir } from '../registry/open.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import { safeJoin } from '../util/safe-path.ts';
import { resolve } from 'node:path';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { readSide } from './preview-read.ts';

export interface RenderOptions {
  site?: string;
  repo?: string;
  rev?: string;
  store?: string;
  out?: string;
  json?: boolean;
}

export async function renderCommand(opts: RenderOptions, ctx: CommandContext): Promise<number> {
  const site = opts.site;
  if (!site) throw new UsageError('render needs --site <site>');
  const source = await openSource(await resolveRepoDir(ctx.cwd, opts.repo), { rev: opts.rev });
  const side = await readSide(source, source.description, { checkContent: false });
  if (side.problems.length > 0) {
    // An agent applies nothing from an invalid commit, templates included.
    ctx.out(side.problems.map((p) => escapeControl(formatProblem(p))).join('\n'));
    ctx.out(`${side.problems.length} problem${side.problems.length === 1 ? '' : 's'} in ${source.description}: no agent renders from it (modelsync validate)`);
    return EXIT.error;
  }
  if (!side.registry.sites.has(site)) throw new NotFoundError(`site ${JSON.stringify(site)} is not declared in the ${source.description} (sites: ${[...side.registry.sites.keys()].join(', ') || 'none'})`, { site: site });
  const state = desiredState(side.registry, site);
  const store = opts.store ? resolve(ctx.cwd, opts.store) : DEFAULT_STORE;
  const rendered = renderSite(state, new TemplateCache(side.templates), store);
  const out = opts.out ? resolve(ctx.cwd, opts.out) : undefined;
  const written: string[] = [];
  const errors: Array<{ dest: string; message: string }> = [];
  for (const r of rendered) {
    if (r.error !== undefined) {
      errors.push({ dest: r.dest, message: r.error });
      continue;
    }
    if (out) {
      let path: string;
      try {
        path = safeJoin(out, r.dest);
      } catch (err) {
        errors.push({ dest: r.dest, message: `dest ${(err as Error).message}` });
        continue;
      }
      await writeFileAtomic(path, r.text!);
      written.push(path);
    }
  }
  if (opts.json) {
    printJson(ctx, { site: site, source: source.description, commit: source.commit, store, templates: rendered, written, errors });
  } else {
    if (rendered.length === 0) ctx.out(`site ${site} declares no templates`);
    for (const r of rendered) {
      if (r.error !== undefined) continue;
      if (out) continue;
      ctx.out(`==> ${r.dest} (from ${r.src}) <==`);
      ctx.out(escapeControl(r.text!));
    }
    for (const p of written) ctx.out(`wrote ${p}`);
    for (const e of errors) ctx.out(`error: ${e.dest}: ${escapeControl(e.message)}`);
  }
  return errors.length > 0 ? EXIT.error : EXIT.ok;
}
