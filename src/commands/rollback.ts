import { withInterrupts } from '../registry/interrupt.ts';
import { rollbackModel } from '../registry/promote.ts';
import { pushAfterCommit } from '../registry/push.ts';
import { resolveRepoDir } from '../registry/open.ts';
import { commandSigner } from '../trust/sign.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { pushAuth } from './promote.ts';

export interface RollbackOptions {
  model?: string;
  to?: string;
  repo?: string;
  push?: boolean;
  remote?: string;
  tokenFile?: string;
  /** Sign the commit with git's signing config (user.signingkey, gpg.format); default: as commit.gpgsign says. */
  sign?: boolean;
  json?: boolean;
}

export async function rollbackCommand(opts: RollbackOptions, ctx: CommandContext): Promise<number> {
  const repoDir = await resolveRepoDir(ctx.cwd, opts.repo);
  const auth = await pushAuth(opts, repoDir, ctx);
  // Before anything is committed: a missing signing key stops the command, not a commit half made.
  const sign = await commandSigner(opts.sign, repoDir, ctx.env);
  const r = await withInterrupts(`rollback ${opts.model}`, (signal) => rollbackModel(repoDir, opts.model ?? '', ctx.env, { to: opts.to, signal, sign }));
  // --to the current version: nothing is committed, but --push still pushes (an earlier push may have failed).
  const pushed = opts.push
    ? await pushAfterCommit({ repoDir, remote: opts.remote ?? 'origin', env: ctx.env, ...auth, logger: ctx.logger }, r.unchanged ? `${r.model} ${r.version} was already current` : `rolled back ${r.model} to ${r.version}`, r.commit)
    : undefined;
  if (opts.json) {
    printJson(ctx, { ok: true, ...r, pushed });
    return EXIT.ok;
  }
  if (r.unchanged) ctx.out(`${r.model} ${r.version} is already current; nothing to commit`);
  else {
    ctx.out(`Rolled back ${r.model}: ${r.from} -> ${r.version}${r.previous ? ` (previous_version ${r.previous})` : ''}`);
    ctx.out(`Commit ${r.commit.slice(0, 12)} on ${r.branch}: ${r.message.split('\n')[0]}`);
  }
  if (pushed) ctx.out(`Pushed ${pushed.branch} to ${pushed.remote}`);
  // modelsync commits without running git's hooks, so the post-commit auto-push does not happen here.
  else if (!r.unchanged) ctx.out('Not pushed: sites keep what they run until you push (git push, or --push next time).');
  return EXIT.ok;
}
