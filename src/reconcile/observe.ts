/** Observing the store and planning, and the free-space check made before any byte is fetched. */
import { stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { observeModel, versionIntact, type ObjectRef } from '../store/index.ts';
import { formatBytes } from './format.ts';
import type { PassContext, Step } from './pass-context.ts';
import { holdForWindows } from './window.ts';
import { plan as makePlan, type ModelPlan, type ObservedInput, type RememberedInput } from './plan.ts';

/** Stat-only look at the store: which desired versions are complete, which objects are missing. */
async function observe(ctx: PassContext): Promise<Map<string, ObservedInput>> {
  const layout = ctx.store.layout;
  const out = new Map<string, ObservedInput>();
  for (const d of ctx.desired) {
    const obs = await observeModel(layout, d.model);
    const files = d.files ?? [];
    const intact = obs.versions.includes(d.version) && (await versionIntact(layout, d.model, d.version, files));
    const missing: ObjectRef[] = [];
    if (!intact) {
      for (const f of files) if (!(await ctx.store.objects.has(f))) missing.push({ oid: f.oid, size: f.size });
    }
    out.set(d.model, { active: obs.current, desiredIntact: intact, missing });
  }
  return out;
}

export const planStep: Step = async (ctx) => {
  const observed = await observe(ctx);
  const remembered = new Map<string, RememberedInput>();
  for (const d of ctx.desired) {
    remembered.set(d.model, {
      lastApplied: ctx.state.models[d.model]?.lastApplied,
      degraded: ctx.state.degraded.filter((x) => x.model === d.model),
    });
  }
  ctx.plan = makePlan({ commit: ctx.opened!.commit, force: Boolean(ctx.opts.force), desired: ctx.desired, observed, remembered });
  ctx.waitUntil = holdForWindows(ctx.plan, ctx.site?.windows, ctx.now(), Boolean(ctx.opts.force));
  for (const m of ctx.plan.models) {
    if (m.action === 'error') ctx.modelErrors.set(m.model, { code: 'NotFoundError', message: `${m.model}: ${m.detail}`, retry: 'stalling', model: m.model });
    if (m.action !== 'none') ctx.logger.debug({ model: m.model, action: m.action, reason: m.reason }, m.detail);
  }
};

/**
 * Before any byte is fetched: what each model still needs (objects minus
 * partial downloads already on disk) must fit in the free space of the
 * store's filesystem, models taken in plan order. A model that does not fit
 * fails with a clear error instead of filling the disk halfway.
 */
export async function reserveSpace(ctx: PassContext, models: readonly ModelPlan[]): Promise<void> {
  const fetching = models.filter((m) => m.action === 'fetch' && !ctx.modelErrors.has(m.model));
  if (fetching.length === 0) return;
  const layout = ctx.store.layout;
  let free: number;
  try {
    free = ctx.opts.freeBytes ? await ctx.opts.freeBytes() : await statfs(layout.root).then((st) => st.bavail * st.bsize);
  } catch {
    return; // unknown: the download itself reports a full disk
  }
  const counted = new Set<string>();
  let planned = 0;
  for (const m of fetching) {
    let need = 0;
    const mine: string[] = [];
    for (const o of m.fetch) {
      if (counted.has(o.oid) || mine.includes(o.oid)) continue;
      const partial = await stat(join(layout.downloadsDir, `${o.oid}.part`)).then((st) => st.size, () => 0);
      need += Math.max(0, o.size - partial);
      mine.push(o.oid);
    }
    if (planned + need > free) {
      const left = Math.max(0, free - planned);
      ctx.modelErrors.set(m.model, {
        code: 'StoreError',
        message: `${m.model} ${m.desired} needs ${formatBytes(need)} on the store's filesystem (${layout.root}) but only ${formatBytes(left)} are free; nothing of it was downloaded and ${m.active ? `${m.active} stays active` : 'nothing is active yet'}. Free some space (modelsync gc, a lower retention.keep) and the next pass fetches it`,
        retry: 'stalling',
        model: m.model,
        data: { needBytes: need, freeBytes: left, diskFull: true },
      });
      continue;
    }
    planned += need;
    for (const oid of mine) counted.add(oid);
  }
}
