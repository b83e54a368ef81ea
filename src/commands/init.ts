import { resolve } from 'node:path';
import { initRegistry } from '../registry/init.ts';
import { withInterrupts } from '../registry/interrupt.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface InitOptions {
  dir?: string;
  branch?: string;
  bareExample?: boolean;
  json?: boolean;
}

export async function initCommand(opts: InitOptions, ctx: CommandContext): Promise<number> {
  const dir = resolve(ctx.cwd, opts.dir ?? '.');
  const r = await withInterrupts(`init ${dir}`, (signal) => initRegistry({ dir, branch: opts.branch ?? 'main', example: !opts.bareExample, env: ctx.env, signal }));
  if (opts.json) {
    printJson(ctx, { ok: true, ...r });
    return EXIT.ok;
  }
  ctx.out(`Initialised a modelsync registry in ${r.dir} (branch ${r.branch}, ${r.commits.length} commit${r.commits.length === 1 ? '' : 's'})`);
  if (r.published.length) ctx.out(`Published the example: ${r.published.map((p) => `${p.model} ${p.version}`).join(', ')}`);
  ctx.out('Hooks: core.hooksPath=hooks (validate before commit and push; push after a commit on the default branch)');
  if (!r.lfsFilterConfigured) ctx.out('Note: git-lfs was not found on PATH; install it (and run `git lfs install`) before using stock git in this repository.');
  ctx.out(`Next: cd ${r.dir} && modelsync list`);
  return EXIT.ok;
}
