/** Building versions, switching `current`, and judging the switches by the services' health (rolling back the unhealthy). */
import { activate, buildVersion, restore, writeState, type VersionFile } from '../store/index.ts';
import type { ActivatedModel, ActivationHooks, UnhealthyService } from './hooks.ts';
import { loadValidated } from './load.ts';
import type { Activation, PassContext, Step } from './pass-context.ts';
import { asModelsyncError, passError } from './result.ts';

export const buildVersions: Step = async (ctx) => {
  for (const m of ctx.plan!.models) {
    if (!ctx.ready.has(m.model) || ctx.modelErrors.has(m.model)) continue;
    try {
      await buildVersion(ctx.store.layout, m.model, m.desired, m.files as VersionFile[], ctx.barrier);
    } catch (err) {
      ctx.modelErrors.set(m.model, passError(err, m.model));
      ctx.ready.delete(m.model);
    }
  }
};

export const switchCurrent: Step = async (ctx) => {
  for (const m of ctx.plan!.models) {
    if (!ctx.ready.has(m.model) || ctx.modelErrors.has(m.model) || m.held) continue;
    try {
      const { from, previousBefore } = await activate(ctx.store.layout, m.model, m.desired, ctx.barrier);
      ctx.activations.push({ model: m.model, version: m.desired, from, previousBefore, repair: from === m.desired });
    } catch (err) {
      ctx.modelErrors.set(m.model, passError(err, m.model));
    }
  }
};

/**
 * Switches an earlier pass made but never saw judged (it was stopped or
 * crashed while services restarted or were health-checked): still active and
 * still what the site wants, so they are judged in this pass.
 */
function resumeOwedVerdicts(ctx: PassContext): void {
  for (const v of ctx.state.verifying) {
    const m = ctx.plan?.models.find((x) => x.model === v.model);
    if (!m || m.action !== 'none' || m.reason !== 'in-sync' || m.active !== v.version) continue; // superseded
    if (ctx.activations.some((a) => a.model === v.model)) continue;
    ctx.activations.push({
      model: v.model, version: v.version, from: v.from, previousBefore: v.previousBefore, repair: false,
      resumed: { since: v.since, by: v.by === 'reconcile' ? 'reconcile' : 'interrupted-pass' },
    });
    if (v.by === 'reconcile') {
      ctx.logger.info({ model: v.model, version: v.version, since: v.since }, 'activated by `modelsync reconcile`, which restarts no service: restarting its services and checking their health now');
    } else {
      ctx.logger.warn({ model: v.model, version: v.version, since: v.since }, 'an earlier pass stopped before this switch was health-checked; checking it now');
    }
  }
}

export const runHooks: Step = async (ctx) => {
  const hooks = ctx.opts.hooks;
  if (!hooks) return;
  if (hooks.onRegistry && ctx.opened && ctx.site) {
    hooks.onRegistry({
      commit: ctx.opened.commit, source: ctx.opened.source, site: ctx.site, desired: ctx.desired, loadRegistry: () => loadValidated(ctx),
    });
  }
  await judgeSwitches(ctx, hooks);
  if (hooks.settle) {
    try {
      ctx.warnings.push(...(await hooks.settle()).warnings);
    } catch (err) {
      ctx.warnings.push(`after the pass: ${asModelsyncError(err).message}`);
    }
  }
};

/**
 * Failed verdicts reached since the switch (hooks.lateVerdicts): those still
 * active and wanted become activations of this pass, judged unhealthy, so the
 * one rollback path below switches them back. A model this pass switched
 * again, or whose site wants another version now, is superseded: not judged.
 */
function lateFailures(ctx: PassContext, hooks: ActivationHooks): Array<{ a: Activation; svc: UnhealthyService }> {
  const out: Array<{ a: Activation; svc: UnhealthyService }> = [];
  for (const v of hooks.lateVerdicts?.() ?? []) {
    const m = ctx.plan?.models.find((x) => x.model === v.model);
    if (!m || m.action !== 'none' || m.active !== v.version || ctx.modelErrors.has(v.model)) continue;
    if (ctx.activations.some((a) => a.model === v.model) || out.some((x) => x.a.model === v.model)) continue;
    const a: Activation = { model: v.model, version: v.version, from: v.from, previousBefore: v.previousBefore, repair: false, late: { service: v.service, reason: v.reason } };
    out.push({ a, svc: { service: v.service, models: [v.model], reason: v.reason } });
  }
  return out;
}

/** Restart and health-check the services of switched models; switch back the models of unhealthy ones. */
async function judgeSwitches(ctx: PassContext, hooks: ActivationHooks): Promise<void> {
  resumeOwedVerdicts(ctx);
  const late = lateFailures(ctx, hooks);
  const changed = ctx.activations.filter((a) => !a.repair);
  if (changed.length === 0) {
    ctx.judged = true;
    if (late.length > 0) await rollBack(ctx, hooks, late);
    return;
  }
  const layout = ctx.store.layout;
  // Durable before any service restarts: if this pass dies before the verdict, the next one owes it.
  const since = ctx.now().toISOString();
  ctx.state.verifying = changed.map((a) => ({
    model: a.model, version: a.version, from: a.from, previousBefore: a.previousBefore, commit: ctx.opened!.commit, since,
  }));
  await writeState(layout, ctx.state);
  await ctx.barrier('hooks:verifying');
  const activated: ActivatedModel[] = changed.map((a) => ({ model: a.model, version: a.version, from: a.from, previousBefore: a.previousBefore, currentDir: layout.link(a.model, 'current') }));
  const stopped = (): boolean => ctx.signal?.aborted === true;
  const owe = (why: string): void => {
    ctx.verdictOwed = new Set(changed.map((a) => a.model));
    const what = changed.map((a) => `${a.model} ${a.version}`).join(', ');
    ctx.warnings.push(`the pass was interrupted before the health of ${what} was judged (${why}); ${changed.length > 1 ? 'they stay' : 'it stays'} active and the next pass checks again`);
  };
  let unhealthy;
  try {
    ({ unhealthy } = await hooks.afterSwitch(activated));
  } catch (err) {
    if (stopped()) return owe(asModelsyncError(err).message);
    ctx.errors.push(passError(err));
    return;
  }
  // A check cut short by the stop says nothing about the version: no rollback, no Degraded.
  if (unhealthy.length > 0 && stopped()) return owe('stopping');
  ctx.judged = true;
  const failed: Array<{ a: Activation; svc: UnhealthyService }> = [];
  for (const svc of unhealthy) {
    for (const model of svc.models) {
      const a = changed.find((x) => x.model === model);
      if (a) failed.push({ a, svc });
    }
  }
  await rollBack(ctx, hooks, [...failed, ...late]);
}

/** The one rollback path: each failed switch is Degraded and goes back to what ran before; their services restart. */
async function rollBack(ctx: PassContext, hooks: ActivationHooks, failed: ReadonlyArray<{ a: Activation; svc: UnhealthyService }>): Promise<void> {
  const layout = ctx.store.layout;
  const rolledBack: ActivatedModel[] = [];
  for (const { a, svc } of failed) {
    const model = a.model;
    if (ctx.degraded.some((d) => d.model === model)) continue;
    if (a.late) ctx.activations.push(a);
    const reason = `service ${svc.service} failed its health check on ${model} ${a.version}: ${svc.reason}`;
    ctx.degraded.push({ model, version: a.version, reason });
    if (a.from === undefined) {
      ctx.warnings.push(`${model} ${a.version} is unhealthy but there is no earlier version to go back to; it stays active`);
      continue;
    }
    try {
      await restore(layout, model, a.from, a.previousBefore);
      rolledBack.push({ model, version: a.from, from: a.version, currentDir: layout.link(model, 'current') });
      ctx.rolledBack.push({ model, failed: a.version, restored: a.from });
    } catch (err) {
      ctx.errors.push(passError(err, model));
    }
  }
  if (rolledBack.length > 0) {
    try {
      await hooks.afterRollback(rolledBack);
    } catch (err) {
      ctx.errors.push(passError(err));
    }
  }
}
