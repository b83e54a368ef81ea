import { UsageError, ValidationError } from '../errors.ts';
import { abortIfRunning, startRollout, type StepResult } from '../rollout/manual.ts';
import { CheckoutRepo } from '../rollout/repo.ts';
import { withInterrupts } from '../registry/interrupt.ts';
import { promoteVersion } from '../registry/promote.ts';
import { checkPushRemote, pushAfterCommit } from '../registry/push.ts';
import { resolveRepoDir } from '../registry/open.ts';
import { commandSigner, type Signer } from '../trust/sign.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { readToken } from './reconcile.ts';

export interface PromoteOptions {
  model?: string;
  version?: string;
  repo?: string;
  push?: boolean;
  remote?: string;
  tokenFile?: string;
  /** Sign the commit with git's signing config (user.signingkey, gpg.format); default: as commit.gpgsign says. */
  sign?: boolean;
  /** Switch every site at once, even with a rollout policy (aborting a rollout in progress). */
  now?: boolean;
  json?: boolean;
}

/**
 * The token for `--push` (publish, promote, rollback), read as reconcile
 * reads it: --token-file, else MODELSYNC_TOKEN_FILE, else MODELSYNC_TOKEN.
 * Read, and the remote checked, before anything is committed, so a missing
 * remote or token file stops the command rather than leaving a commit that
 * was not pushed.
 */
export async function pushAuth(
  opts: { push?: boolean; tokenFile?: string; remote?: string },
  repoDir: string,
  ctx: CommandContext,
): Promise<{ token?: string; tokenSource?: string }> {
  if (!opts.push) {
    if (opts.tokenFile !== undefined) throw new UsageError('--token-file is only used with --push');
    return {};
  }
  await checkPushRemote(repoDir, opts.remote ?? 'origin');
  const token = readToken(opts.tokenFile, ctx);
  if (!token) return {};
  const file = opts.tokenFile ?? ctx.env.MODELSYNC_TOKEN_FILE;
  const tokenSource = opts.tokenFile !== undefined ? `--token-file ${file}` : file ? `MODELSYNC_TOKEN_FILE (${file})` : 'MODELSYNC_TOKEN';
  return { token, tokenSource };
}

/**
 * A model with a `rollout:` policy is staged: the promotion is the rollout
 * file (see src/rollout/). With --now a rollout in progress is aborted (its
 * own commit) and the promotion switches everyone.
 */
async function stagedPromote(repoDir: string, opts: PromoteOptions, ctx: CommandContext, sign: Signer | undefined): Promise<StepResult | undefined> {
  const repo = new CheckoutRepo(repoDir, ctx.env, sign);
  if (opts.now) {
    await abortIfRunning(repo, opts.model ?? '', new Date()).catch((err: unknown) => {
      if (!(err instanceof ValidationError)) throw err; // an invalid head: promote reports it
    });
    return undefined;
  }
  const head = await repo.head().catch(() => null);
  const model = opts.model ?? '';
  // A rollout in progress is refused by startRollout, with or without a policy (a plain promote would strand it).
  if (!head?.registry.models.get(model)?.entry?.rollout && !head?.registry.rollouts.has(model)) return undefined;
  return startRollout(repo, opts.model!, opts.version ?? '', new Date());
}

export async function promoteCommand(opts: PromoteOptions, ctx: CommandContext): Promise<number> {
  const repoDir = await resolveRepoDir(ctx.cwd, opts.repo);
  const auth = await pushAuth(opts, repoDir, ctx);
  // Before anything is committed: a missing signing key stops the command, not a commit half made.
  const sign = await commandSigner(opts.sign, repoDir, ctx.env);
  const staged = await stagedPromote(repoDir, opts, ctx, sign);
  if (staged) {
    const pushed = opts.push ? await pushAfterCommit({ repoDir, remote: opts.remote ?? 'origin', env: ctx.env, ...auth, logger: ctx.logger }, `started the rollout of ${opts.model}`, staged.commit) : undefined;
    if (opts.json) printJson(ctx, { ok: true, rollout: true, ...staged, pushed });
    else {
      ctx.out(`${staged.message.split('\n')[0]} (commit ${staged.commit.slice(0, 12)}); follow it with: modelsync rollout status ${opts.model}`);
      ctx.out(pushed ? `Pushed ${pushed.branch} to ${pushed.remote}` : 'Not pushed: sites keep what they run until you push (git push, or --push next time).');
    }
    return EXIT.ok;
  }
  const r = await withInterrupts(`promote ${opts.model} ${opts.version}`, (signal) => promoteVersion(repoDir, opts.model ?? '', opts.version ?? '', ctx.env, { signal, sign }));
  // Already current: nothing is committed, but --push still pushes (an earlier push may have failed).
  const pushed = opts.push
    ? await pushAfterCommit({ repoDir, remote: opts.remote ?? 'origin', env: ctx.env, ...auth, logger: ctx.logger }, r.unchanged ? `${r.model} ${r.version} was already current` : `promoted ${r.model} ${r.version}`, r.commit)
    : undefined;
  if (opts.json) {
    printJson(ctx, { ok: true, ...r, pushed });
    return EXIT.ok;
  }
  if (r.unchanged) ctx.out(`${r.model} ${r.version} is already current; nothing to commit`);
  else ctx.out(`Promoted ${r.model}: ${r.from ?? '(none)'} -> ${r.version} in commit ${r.commit.slice(0, 12)} on ${r.branch}`);
  if (pushed) ctx.out(`Pushed ${pushed.branch} to ${pushed.remote}`);
  // modelsync commits without running git's hooks, so the post-commit auto-push does not happen here.
  else if (!r.unchanged) ctx.out('Not pushed: sites keep what they run until you push (git push, or --push next time).');
  return EXIT.ok;
}
