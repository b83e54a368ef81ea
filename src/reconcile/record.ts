/** After the steps: per-model outcomes, state.json, unmanaged models and retention. */
import { resolve } from 'node:path';
import { collectGarbage, listModels, observeModel, writeState, type ModelState } from '../store/index.ts';
import { redactUrl } from '../util/redact.ts';
import type { PassContext } from './pass-context.ts';
import type { ModelPlan } from './plan.ts';
import type { ModelOutcome, ReconcileResult } from './result.ts';

/** Models in the store the site did not select this pass (known once the pass planned). */
export async function unmanagedModels(ctx: PassContext): Promise<ReconcileResult['unmanaged']> {
  if (!ctx.plan) return [];
  const selected = new Set(ctx.plan.models.map((m) => m.model));
  const out: ReconcileResult['unmanaged'] = [];
  for (const model of await listModels(ctx.store.layout)) {
    if (selected.has(model)) continue;
    const obs = await observeModel(ctx.store.layout, model).catch(() => undefined);
    out.push(obs?.current ? { model, active: obs.current } : { model });
  }
  return out;
}

export function describeRegistry(registry: string): string {
  return /^https?:\/\//i.test(registry) ? redactUrl(registry) : resolve(registry);
}

export function outcomesOf(ctx: PassContext): ModelOutcome[] {
  return (ctx.plan?.models ?? []).map((m: ModelPlan) => {
    const act = ctx.activations.find((a) => a.model === m.model);
    const deg = ctx.degraded.find((d) => d.model === m.model);
    const error = ctx.modelErrors.get(m.model);
    let outcome: ModelOutcome['outcome'];
    let active = m.active;
    if (ctx.opts.dryRun) outcome = m.action === 'none' ? 'unchanged' : m.action === 'conflict' ? 'conflict' : m.action === 'error' ? 'failed' : 'planned';
    else if (error) outcome = 'failed';
    else if (deg) {
      outcome = 'degraded';
      active = act?.from ?? act?.version ?? m.active;
    } else if (m.reason === 'degraded') outcome = 'degraded';
    else if (act) {
      outcome = 'activated';
      active = act.version;
    } else if (m.held) outcome = 'waiting';
    else if (m.action === 'conflict') outcome = 'conflict';
    else if (m.action === 'none') outcome = 'unchanged';
    else outcome = 'failed';
    const o: ModelOutcome = {
      model: m.model,
      action: m.action,
      reason: m.reason,
      detail: m.detail,
      outcome,
      desired: m.desired,
      declared: m.declared,
      desiredReason: m.desiredReason,
      from: m.active,
      active,
      bytes: m.bytes,
    };
    if (m.drift) o.drift = m.drift;
    if (error) o.error = error;
    if (!ctx.opts.dryRun && (m.action === 'fetch' || m.action === 'activate') && !ctx.modelBytesUnknown.has(m.model)) {
      o.bytesFetched = ctx.modelBytes.get(m.model) ?? 0;
    }
    // Not switched by this pass: the services' verdict owed for a switch an earlier pass made.
    if (act?.resumed) o.owedVerdict = { ...act.resumed, ...(act.from !== undefined ? { from: act.from } : {}) };
    return o;
  });
}

export async function recordState(
  ctx: PassContext,
  r: Pick<ReconcileResult, 'status' | 'changed' | 'conflicts' | 'unmanaged'>,
): Promise<void> {
  const at = ctx.now().toISOString();
  const s = ctx.state;
  const commit = ctx.opened?.commit;
  s.site = ctx.opts.site;
  s.registry = ctx.opened?.description ?? describeRegistry(ctx.opts.registry);
  s.branch = ctx.opts.branch ?? 'main';
  s.pins = { ...ctx.pins };
  if (ctx.site) s.retentionKeep = ctx.site.retention.keep;
  if (commit) {
    s.attemptedCommit = commit;
    s.attemptedAt = at;
  }
  if (ctx.plan && commit) {
    for (const m of ctx.plan.models) {
      const prev: ModelState = s.models[m.model] ?? {};
      const act = ctx.activations.find((a) => a.model === m.model);
      const deg = ctx.degraded.find((d) => d.model === m.model);
      const next: ModelState = { ...prev, declared: m.declared, desired: m.desired, reason: m.desiredReason };
      const nowActive = deg ? (act?.from ?? act?.version) : act ? act.version : m.active;
      next.active = nowActive;
      // What the registry (not a pin, not a hand) put in place, and its services accepted, is the base of the conflict rule.
      const fromRegistry = m.desiredReason !== 'pin';
      // A switch made by `reconcile` (no services to judge it) is still the registry's: it moves lastApplied,
      // so a later revert is a rollback, not a conflict. Only a verdict owed by a stopped agent pass holds it.
      const owed = ctx.verdictOwed?.has(m.model) || (!ctx.judged && s.verifying.some((v) => v.model === m.model && v.by !== 'reconcile'));
      if (fromRegistry && nowActive === m.desired && !deg && !owed && !ctx.modelErrors.has(m.model)) {
        if (prev.lastApplied !== m.desired) {
          next.lastApplied = m.desired;
          next.lastAppliedAt = at;
          next.lastAppliedCommit = commit;
        }
      }
      // Such a switch judged later and rolled back: the version gone back to is the base again.
      const rb = ctx.rolledBack.find((x) => x.model === m.model);
      if (rb && prev.lastApplied === rb.failed) {
        next.lastApplied = rb.restored;
        next.lastAppliedAt = at;
        delete next.lastAppliedCommit;
      }
      if (m.action === 'conflict') {
        next.conflict = { active: m.active ?? '', declared: m.desired, since: prev.conflict?.active === m.active && prev.conflict?.declared === m.desired ? prev.conflict.since : at };
      } else {
        delete next.conflict;
      }
      delete next.unmanagedSince;
      s.models[m.model] = next;
    }
    // No longer selected: left as they are, remembered as unmanaged; forgotten once gone from the store.
    s.selected = ctx.plan.models.map((m) => m.model);
    for (const model of Object.keys(s.models)) {
      if (!s.selected.includes(model) && !r.unmanaged.some((u) => u.model === model)) delete s.models[model];
    }
    for (const u of r.unmanaged) {
      const { desired: _d, reason: _r, conflict: _c, ...prev } = s.models[u.model] ?? {};
      s.models[u.model] = { ...prev, active: u.active, unmanagedSince: prev.unmanagedSince ?? at };
    }
    // Verdicts still owed: all judged, or those a stopped pass left, or (a pass without services) those still active.
    if (ctx.judged) s.verifying = [];
    else if (!ctx.verdictOwed) {
      s.verifying = s.verifying.filter((v) => {
        const m = ctx.plan!.models.find((x) => x.model === v.model);
        const act = ctx.activations.find((a) => a.model === v.model && !a.repair);
        return m ? !act && m.active === v.version : true;
      });
    }
    // A pass without services (`modelsync reconcile`) switched versions no service was restarted for:
    // the verdict is owed, and the agent's next pass restarts and health-checks them once.
    if (!ctx.opts.hooks) {
      // Nobody will judge a switch of a model the site no longer selects.
      s.verifying = s.verifying.filter((v) => v.by !== 'reconcile' || s.selected!.includes(v.model));
      for (const a of ctx.activations) {
        if (a.repair) continue;
        s.verifying = [
          ...s.verifying.filter((v) => v.model !== a.model),
          { model: a.model, version: a.version, from: a.from, previousBefore: a.previousBefore, commit, since: at, by: 'reconcile' },
        ];
      }
    }
    // Degraded versions are remembered for this commit only: a new commit retries them.
    s.degraded = [
      ...s.degraded.filter((d) => d.commit === commit && !ctx.degraded.some((x) => x.model === d.model)),
      ...ctx.degraded.map((d) => ({ ...d, commit, since: at })),
    ];
  }
  if (commit && ctx.site && ctx.registry && !ctx.fromSnapshot) {
    s.snapshot = { commit, site: ctx.opts.site, pins: { ...ctx.pins }, resolvedSite: ctx.site as unknown as Record<string, unknown>, desired: ctx.desired as unknown as Array<Record<string, unknown>> };
  }
  // Applied means the store runs what the commit declares: a version that failed its health check (and
  // was switched back, or had nothing to go back to) was attempted, not applied.
  if (ctx.errors.length === 0 && r.status !== 'degraded' && commit) {
    s.appliedCommit = commit;
    s.appliedAt = at;
  }
  s.history.push({
    at: ctx.startedAt,
    commit,
    status: r.status,
    changed: r.changed,
    bytesFetched: ctx.bytesFetched,
    durationMs: Math.round(performance.now() - ctx.started),
    conflicts: r.conflicts.map((c) => c.model),
    errors: ctx.errors.map((e) => ({ code: e.code, message: e.message.slice(0, 2000), model: e.model })),
  });
  await writeState(ctx.store.layout, s);
}

export async function applyRetention(ctx: PassContext): Promise<void> {
  const protect = new Map<string, Set<string>>();
  const add = (m: string, v: string): void => {
    protect.set(m, (protect.get(m) ?? new Set()).add(v));
  };
  for (const d of ctx.desired) add(d.model, d.version);
  for (const [m, v] of Object.entries(ctx.pins)) add(m, v);
  const report = await collectGarbage(ctx.store.layout, { keep: ctx.site!.retention.keep, protect });
  if (report.versionsRemoved.length > 0 || report.objectsRemoved > 0) {
    ctx.logger.info({ versions: report.versionsRemoved.map((v) => `${v.model}/${v.version}`), objects: report.objectsRemoved, bytesFreed: report.bytesFreed }, 'retention');
  }
}
