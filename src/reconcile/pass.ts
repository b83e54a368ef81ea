/**
 * One reconcile pass as named steps (DESIGN.md, "Reconcile"):
 *
 *   lock → fetch registry → validate → resolve desired → observe → plan
 *        → fetch objects → build versions → repair active → switch → hooks
 *        → record state → retention
 *
 * Each step reads and writes one PassContext; the first step that throws ends
 * the pass (per-model problems are collected instead, so one bad model does
 * not hold the others back), and so does the pass's deadline (`timeoutMs`).
 * The steps live in load.ts, observe.ts, fetch-objects.ts, activate.ts and
 * repair.ts; record.ts turns the outcome into state. `finish` is the one place that turns the outcome
 * into state.json, the summary log line and the ReconcileResult.
 */
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { PassTimeoutError } from '../errors.ts';
import { silentLogger } from '../log.ts';
import { formatDuration } from './format.ts';
import { Store, emptyState, noBarrier } from '../store/index.ts';
import { buildVersions, runHooks, switchCurrent } from './activate.ts';
import { fetchObjects } from './fetch-objects.ts';
import { fetchRegistry, lock, resolveDesired, validate } from './load.ts';
import { planStep } from './observe.ts';
import { repairActive } from './repair.ts';
import type { PassContext, ReconcileOptions, Step } from './pass-context.ts';
import { applyRetention, describeRegistry, outcomesOf, recordState, unmanagedModels } from './record.ts';
import { verifyFetchedRegistry } from '../trust/index.ts';
import { asModelsyncError, exitCodeOf, passError, statusOf, type ReconcileResult } from './result.ts';

/** Nothing of a commit is read further unless a key this site trusts signed it (src/trust). */
const verifySignatures: Step = async (ctx) => {
  if (!ctx.opts.verify) return;
  const o = ctx.opened!;
  await verifyFetchedRegistry({ settings: ctx.opts.verify, gitdir: o.gitdir, tip: o.commit, appliedCommit: ctx.state.appliedCommit, deepen: o.deepen, now: ctx.now, logger: ctx.logger });
};

export { MAX_PLAIN_BLOB_BYTES, type PassProgress, type ReconcileOptions } from './pass-context.ts';

const STEPS: Array<[string, Step]> = [
  ['lock', lock],
  ['fetch-registry', fetchRegistry],
  ['verify-signatures', verifySignatures],
  ['validate', validate],
  ['resolve-desired', resolveDesired],
  ['plan', planStep],
  ['fetch-objects', fetchObjects],
  ['build-versions', buildVersions],
  ['repair-active', repairActive],
  ['switch', switchCurrent],
  ['hooks', runHooks],
];

const DRY_RUN_STEPS = new Set(['lock', 'fetch-registry', 'verify-signatures', 'validate', 'resolve-desired', 'plan']);

// ---------------------------------------------------------------- the pass

export async function reconcile(opts: ReconcileOptions): Promise<ReconcileResult> {
  const now = opts.now ?? (() => new Date());
  // The deadline's timer is unref'd: it never holds a finished process open.
  const deadline = opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined;
  const ctx: PassContext = {
    opts,
    signal: deadline && opts.signal ? AbortSignal.any([opts.signal, deadline]) : (deadline ?? opts.signal),
    logger: opts.logger ?? silentLogger,
    barrier: opts.barrier ?? noBarrier,
    now,
    started: performance.now(),
    startedAt: now().toISOString(),
    store: new Store(resolve(opts.store)),
    state: emptyState(),
    pins: {},
    desired: [],
    modelErrors: new Map(),
    errors: [],
    warnings: [],
    bytesFetched: 0,
    modelBytes: new Map(),
    modelBytesUnknown: new Set(),
    ready: new Set(),
    activations: [],
    degraded: [],
    rolledBack: [],
    unfetched: new Set(),
    stepMs: {},
  };
  // Our deadline, or the caller's signal aborted as a timeout (the agent shares one with its health checks).
  const timedOut = (): boolean =>
    opts.timeoutMs !== undefined && (deadline?.aborted === true || (opts.signal?.aborted === true && (opts.signal.reason as { name?: string } | undefined)?.name === 'TimeoutError'));
  let stepName = '';
  try {
    for (const [name, step] of STEPS) {
      if (opts.dryRun && !DRY_RUN_STEPS.has(name)) break;
      stepName = name;
      const t = performance.now();
      await step(ctx);
      ctx.stepMs[name] = Math.round(performance.now() - t);
      ctx.logger.debug({ step: name, ms: ctx.stepMs[name] }, 'step done');
      // The step stopped on the deadline (its downloads aborted): no later step starts.
      if (timedOut()) throw passTimedOut(opts.timeoutMs!, name);
      await ctx.barrier(`step:${name}`);
    }
  } catch (err) {
    ctx.errors.push(passError(err));
  }
  // Stopped by its deadline mid-step (a download, a health check): say so first, whatever the step reported.
  if (timedOut() && !ctx.errors.some((e) => e.code === 'PassTimeoutError')) ctx.errors.unshift(passError(passTimedOut(opts.timeoutMs!, stepName)));
  return finish(ctx);
}

function passTimedOut(timeoutMs: number, step: string): PassTimeoutError {
  return new PassTimeoutError(
    `the pass ran past its deadline (pass_timeout ${formatDuration(timeoutMs)}) during ${step} and stopped; what is active stays, partial downloads are kept and the next pass resumes them`,
    { timeoutMs, step },
  );
}

/** The one place that turns a pass into state, a log line and a result. */
async function finish(ctx: PassContext): Promise<ReconcileResult> {
  const { opts } = ctx;
  for (const [, e] of ctx.modelErrors) ctx.errors.push(e);
  const outcomes = outcomesOf(ctx);
  // A dry run reports the switches it would make, so its status and summary say what a pass would do.
  const changed = opts.dryRun
    ? (ctx.plan?.models ?? [])
      .filter((m) => (m.action === 'fetch' || m.action === 'activate') && m.reason !== 'repair' && !ctx.modelErrors.has(m.model))
      .map((m) => ({ model: m.model, from: m.active, to: m.desired }))
    : ctx.activations
      .filter((a) => !a.repair && !ctx.degraded.some((d) => d.model === a.model))
      .map((a) => ({ model: a.model, from: a.from, to: a.version }));
  const conflicts = (ctx.plan?.conflicts ?? []).map((m) => ({ model: m.model, active: m.active, declared: m.desired, detail: m.detail }));
  const skippedDegraded = (ctx.plan?.models ?? []).filter((m) => m.reason === 'degraded');
  const degraded = [...ctx.degraded, ...skippedDegraded.map((m) => ({ model: m.model, version: m.desired, reason: m.detail }))];
  const status = statusOf({ errors: ctx.errors, degraded, conflicts, changed });
  const unmanaged = await unmanagedModels(ctx).catch(() => []);
  if (unmanaged.length > 0) ctx.logger.debug({ unmanaged: unmanaged.map((u) => u.model) }, 'models no longer selected by the site stay as they are');

  if (!opts.dryRun && ctx.lock) {
    try {
      await recordState(ctx, { status, changed, conflicts, unmanaged });
      await ctx.barrier('step:record');
    } catch (err) {
      ctx.errors.push(passError(err));
    }
    if (opts.retention !== false && ctx.site && ctx.activations.length > 0) {
      try {
        await applyRetention(ctx);
      } catch (err) {
        ctx.warnings.push(`retention failed: ${asModelsyncError(err).message}`);
      }
    }
    await ctx.store.cleanTmp({ keepDownloads: ctx.errors.length > 0 ? ctx.unfetched : new Set() }).catch(() => {});
  }
  await ctx.lock?.release().catch(() => {});
  if (ctx.dryRunDir) await rm(ctx.dryRunDir, { recursive: true, force: true }).catch(() => {});

  const finalStatus = statusOf({ errors: ctx.errors, degraded, conflicts, changed });
  const result: ReconcileResult = {
    status: finalStatus,
    exitCode: exitCodeOf(finalStatus),
    dryRun: Boolean(opts.dryRun),
    site: opts.site,
    registry: ctx.opened?.description ?? describeRegistry(opts.registry),
    commit: ctx.opened?.commit,
    models: outcomes,
    changed,
    rolledBack: ctx.rolledBack,
    conflicts,
    degraded,
    unmanaged,
    bytesFetched: ctx.bytesFetched,
    ...(ctx.throttled ? { throttled: ctx.throttled } : {}),
    registryReachedAt: ctx.opened ? ctx.state.lastFetchAt : undefined,
    bytesPlanned: ctx.plan?.bytes ?? 0,
    durationMs: Math.round(performance.now() - ctx.started),
    errors: ctx.errors,
    warnings: ctx.warnings,
    startedAt: ctx.startedAt,
    stepMs: ctx.stepMs,
    desiredFrom: ctx.fromSnapshot ? 'snapshot' : ctx.registry ? 'registry' : undefined,
    ...(ctx.waitUntil ? { waitUntil: ctx.waitUntil.toISOString() } : {}),
  };
  const switches = changed.map((c) => `${c.model}:${c.from ?? '-'}→${c.to}`);
  const summary = {
    site: result.site,
    commit: result.commit?.slice(0, 12),
    status: result.status,
    // A dry run changed nothing: its keys say what it would do.
    ...(result.dryRun ? { dryRun: true, wouldChange: switches, bytesToFetch: result.bytesPlanned } : { changed: switches, bytesFetched: result.bytesFetched }),
    ...(ctx.rolledBack.length > 0 ? { rolledBack: ctx.rolledBack.map((r) => `${r.model}:${r.failed}→${r.restored}`) } : {}),
    ...(degraded.length > 0 ? { degraded: degraded.map((d) => `${d.model}:${d.version}`) } : {}),
    durationMs: result.durationMs,
    conflicts: conflicts.map((c) => c.model),
    errors: ctx.errors.map((e) => `${e.code}: ${e.message.split('\n')[0]}`),
  };
  const message = result.dryRun ? 'reconcile dry run (nothing applied)' : 'reconcile pass';
  if (result.status === 'failed') ctx.logger.error(summary, message);
  else if (result.status === 'conflict' || result.status === 'degraded') ctx.logger.warn(summary, message);
  else ctx.logger.info(summary, message);
  return result;
}
