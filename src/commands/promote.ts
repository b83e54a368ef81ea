import { withInterrupts } from '../registry/interrupt.ts';
import { promoteVersion } from '../registry/promote.ts';
import { pushAfterCommit } from '../registry/push.ts';
import { resolveRepoDir } from '../registry/open.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface PromoteOptions {
  model?: string;
  version?: string;
  repo?: string;
  push?: boolean;
  remote?: string;
  json?: boolean;
}

export async function promoteCommand(opts: PromoteOptions, ctx: CommandContext): Promise<number> {
  const repoDir = await resolveRepoDir(ctx.cwd, opts.repo);
  const r = await withInterrupts(`promote ${opts.model} ${opts.version}`, (signal) => promoteVersion(repoDir, opts.model ?? '', opts.version ?? '', ctx.env, { signal }));
  const pushed = opts.push
    ? await pushAfterCommit({ repoDir, remote: opts.remote ?? 'origin', env: ctx.env, logger: ctx.logger }, `promoted ${r.model} ${r.version}`, r.commit)
    : undefined;
  if (opts.json) {
    printJson(ctx, { ok: true, ...r, pushed });
    return EXIT.ok;
  }
  ctx.out(`Promoted ${r.model}: ${r.from ?? '(none)'} -> ${r.version} in commit ${r.commit.slice(0, 12)} on ${r.branch}`);
  if (pushed) ctx.out(`Pushed ${pushed.branch} to ${pushed.remote}`);
  return EXIT.ok;
}
