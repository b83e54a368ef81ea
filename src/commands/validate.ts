import { resolve } from 'node:path';
import { formatProblem } from '../errors.ts';
import { loadRegistry } from '../registry/load.ts';
import { openSource, resolveRepoDir } from '../registry/open.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface ValidateOptions {
  repo?: string;
  rev?: string;
  staged?: boolean;
  json?: boolean;
}

export async function validateCommand(opts: ValidateOptions, ctx: CommandContext): Promise<number> {
  const repo = await resolveRepoDir(ctx.cwd, opts.repo);
  // In a pre-commit hook git names the index being committed (a temporary one for `git commit -a`).
  const indexFile = opts.staged && ctx.env.GIT_INDEX_FILE ? resolve(ctx.cwd, ctx.env.GIT_INDEX_FILE) : undefined;
  const source = await openSource(repo, { rev: opts.rev, staged: opts.staged, indexFile });
  const { registry, problems } = await loadRegistry(source);
  const ok = problems.length === 0;
  if (opts.json) {
    printJson(ctx, {
      ok,
      source: source.description,
      commit: source.commit,
      models: registry.models.size,
      versions: [...registry.models.values()].reduce((n, m) => n + m.versions.size, 0),
      sites: registry.sites.size,
      problems,
    });
  } else if (ok) {
    const versions = [...registry.models.values()].reduce((n, m) => n + m.versions.size, 0);
    ctx.out(`ok: ${source.description} — ${registry.models.size} models, ${versions} versions, ${registry.sites.size} sites`);
  } else {
    ctx.out(problems.map(formatProblem).join('\n'));
    ctx.out(`${problems.length} problem${problems.length === 1 ? '' : 's'} in ${source.description}`);
  }
  return ok ? EXIT.ok : EXIT.error;
}
