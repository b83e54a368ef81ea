/**
 * `modelsync rollout status|advance|pause|resume|abort <model>` for people,
 * and `modelsync rollout run [--once]`: the controller for a registry on
 * another Git host (cron or CI with push rights), reading the fleet from a
 * hub's GET /api/v1/sites.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fetchFleet } from '../agent/fleet.ts';
import { UsageError } from '../errors.ts';
import { escapeControl } from '../util/escape.ts';
import { rolloutView } from '../fleet/rollout.ts';
import { rolloutViews } from '../fleet/rollouts.ts';
import { modelPopulation } from '../registry/desired.ts';
import { resolveRepoDir } from '../registry/open.ts';
import { pushAfterCommit, type PushResult } from '../registry/push.ts';
import { RolloutController } from '../rollout/controller.ts';
import { conditionOn } from '../rollout/decide.ts';
import { manualStep, type ManualAction } from '../rollout/manual.ts';
import { observeReports, type StatusSource } from '../rollout/observe.ts';
import { CheckoutRepo } from '../rollout/repo.ts';
import { commandSigner } from '../trust/sign.ts';
import { parseDuration } from '../util/duration.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { pushAuth } from './promote.ts';
import { readToken } from './reconcile.ts';

const run = promisify(execFile);

export interface RolloutOptions {
  action?: string;
  model?: string;
  repo?: string;
  push?: boolean;
  remote?: string;
  tokenFile?: string;
  hub?: string;
  once?: boolean;
  interval?: string;
  /** Sign each step with git's signing config; default: as commit.gpgsign says. */
  sign?: boolean;
  json?: boolean;
}

const ACTIONS = new Set(['status', 'advance', 'pause', 'resume', 'abort', 'run']);

function hubSource(hub: string, token: string | undefined): StatusSource {
  return { sites: async () => (await fetchFleet(hub, token)) as unknown as Array<Record<string, unknown>> };
}

export async function rolloutCommand(opts: RolloutOptions, ctx: CommandContext): Promise<number> {
  const action = opts.action ?? '';
  if (!ACTIONS.has(action)) throw new UsageError(`unknown rollout action ${JSON.stringify(action)} (status, advance, pause, resume, abort, run)`);
  if (action !== 'run' && action !== 'status' && !opts.model) throw new UsageError(`rollout ${action} needs a model`);
  const repoDir = await resolveRepoDir(ctx.cwd, opts.repo);
  if (action === 'status') return status(new CheckoutRepo(repoDir, ctx.env), opts, ctx);
  // Before anything is committed: a missing signing key stops the command, not a step half made.
  const repo = new CheckoutRepo(repoDir, ctx.env, await commandSigner(opts.sign, repoDir, ctx.env));
  const auth = await pushAuth(opts, repoDir, ctx);
  const push = async (what: string, commit: string): Promise<PushResult | undefined> =>
    opts.push ? pushAfterCommit({ repoDir, remote: opts.remote ?? 'origin', env: ctx.env, ...auth, logger: ctx.logger }, what, commit) : undefined;

  if (action === 'run') {
    if (!opts.hub) throw new UsageError('rollout run needs --hub <url> (where the sites report)');
    const intervalMs = parseDuration(opts.interval ?? '30s');
    if (intervalMs === null || intervalMs < 1000) throw new UsageError(`--interval ${opts.interval}: give a duration of at least 1s, e.g. 30s`);
    const controller = new RolloutController({ repo, status: hubSource(opts.hub, readToken(opts.tokenFile, ctx)), now: () => new Date(), logger: ctx.logger, remembers: !opts.once });
    for (;;) {
      // Decide on what the remote holds now, not on an old clone.
      if (opts.push) await run('git', ['pull', '--ff-only', '-q', opts.remote ?? 'origin'], { cwd: repoDir, env: ctx.env });
      const outcomes = await controller.tick();
      for (const o of outcomes) {
        ctx.out(`${o.model} ${o.version}: ${o.decision.kind}: ${o.decision.why}${o.commit ? ` (commit ${o.commit.slice(0, 12)})` : ''}${o.error ? ` (not committed: ${o.error})` : ''}`);
        if (o.commit) await push(`rollout step for ${o.model}`, o.commit);
      }
      if (outcomes.length === 0) ctx.out('no rollout in progress');
      if (opts.once) return EXIT.ok;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  const r = await manualStep(repo, opts.model!, action as ManualAction, new Date());
  const pushed = await push(`rollout ${action} ${r.model}`, r.commit);
  if (opts.json) printJson(ctx, { ok: true, ...r, pushed });
  else {
    ctx.out(`${r.message.split('\n')[0]} (commit ${r.commit.slice(0, 12)})`);
    if (pushed) ctx.out(`Pushed ${pushed.branch} to ${pushed.remote}`);
    else ctx.out('Not pushed: sites follow once the commit reaches the registry they read (git push, or --push).');
  }
  return EXIT.ok;
}

async function status(repo: CheckoutRepo, opts: RolloutOptions, ctx: CommandContext): Promise<number> {
  const head = await repo.head();
  if (!opts.model) {
    // Every rollout in progress, one line each.
    const views = head ? rolloutViews(head.registry) : [];
    if (opts.json) printJson(ctx, { commit: head?.commit, rollouts: views });
    else if (views.length === 0) ctx.out('no rollout in progress');
    else {
      ctx.out(views.map((v) => {
        const reached = v.waves.filter((w) => w.reached).length;
        return `${v.model} ${v.from} → ${v.version}: ${v.status}, ${reached}/${v.waves.length} waves reached (${v.waves.map((w) => `${w.name}${w.current ? '*' : ''}`).join(', ')})`;
      }).join('\n'));
    }
    return EXIT.ok;
  }
  const doc = head?.registry.rollouts.get(opts.model!);
  if (!head || !doc) {
    if (opts.json) printJson(ctx, { model: opts.model, rollout: null });
    else ctx.out(`no rollout of ${opts.model} is in progress`);
    return EXIT.ok;
  }
  const view = rolloutView(doc.data, modelPopulation(head.registry, opts.model!));
  const reports = opts.hub ? await observeReports(hubSource(opts.hub, readToken(opts.tokenFile, ctx))) : undefined;
  const cond = (site: string): string | undefined => (reports ? conditionOn(reports.get(site), doc.data.model, doc.data.version) : undefined);
  if (opts.json) {
    printJson(ctx, { model: opts.model, commit: head.commit, rollout: { ...view, waves: view.waves.map((w) => ({ ...w, ...(reports ? { conditions: Object.fromEntries(w.sites.map((s) => [s, cond(s)])) } : {}) })) } });
    return EXIT.ok;
  }
  const lines = [`${view.model} ${view.from} → ${view.version}: ${view.status} at wave ${doc.data.state.wave} since ${view.since}${view.reason ? ` (${escapeControl(view.reason)})` : ''}`];
  for (const w of view.waves) {
    const sites = w.sites.map((s) => (reports ? `${s} (${cond(s)})` : s)).join(', ') || '(none)';
    lines.push(`  ${w.current ? '▶' : w.reached ? '✓' : ' '} ${w.name.padEnd(12)} ${w.soak ? `soak ${w.soak}`.padEnd(12) : ''.padEnd(12)} ${sites}`);
  }
  // The rollout's state is what this checkout holds; a controller (the hub's, or rollout run) commits steps upstream.
  lines.push(`(state as of this checkout's commit ${head.commit.slice(0, 12)}; a controller commits its steps upstream: git pull to see them)`);
  ctx.out(lines.join('\n'));
  return EXIT.ok;
}
