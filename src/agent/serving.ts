/**
 * The agent's side of serving views (src/serving): after a switch, give each
 * changed model a new N in its view, point the server's version policy at it,
 * tell the server and wait until it says that N is ready. A server that does
 * not load it makes the model unhealthy, so the pass's own health rollback
 * (src/reconcile/activate.ts) switches `current` back and calls here again
 * with the rollback: the view goes back to the N that served that version
 * (still on disk) and the server is told again.
 */
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ActivatedModel, UnhealthyService } from '../reconcile/hooks.ts';
import type { ServingViewSpec } from '../registry/schema.ts';
import { StoreLayout, readLink } from '../store/index.ts';
import { fallbackFor, servedVersion } from '../serving/numbering.ts';
import { tellRuntime, waitReady, type RuntimeDeps } from '../serving/runtime.ts';
import { ServingRepo } from '../serving/view.ts';
import { sleep, type Clock } from './clock.ts';
import type { ServiceReport } from './hooks.ts';

export interface ServingDeps {
  views: readonly ServingViewSpec[];
  store: string;
  fetch: typeof fetch;
  clock: Clock;
  logger: Logger;
  signal?: AbortSignal;
}

export interface ServingOutcome {
  unhealthy: UnhealthyService[];
  reports: ServiceReport[];
}

const READY_INTERVAL_MS = 250;

/** How a view is named in reports and reasons: its kind and directory. */
export const viewName = (v: Pick<ServingViewSpec, 'kind' | 'dir'>): string => `${v.kind} view ${v.dir}`;

export class ServingViews {
  private readonly layout: StoreLayout;

  constructor(private readonly deps: ServingDeps) {
    this.layout = new StoreLayout(deps.store);
  }

  private repo(v: ServingViewSpec): ServingRepo {
    return new ServingRepo({ kind: v.kind, dir: v.dir, ...(v.config ? { configFile: v.config } : {}), ...(v.runtime_dir ? { runtimeDir: v.runtime_dir } : {}) });
  }

  private runtime(): RuntimeDeps {
    return { fetch: this.deps.fetch, now: () => this.deps.clock.now(), sleep: (ms, signal) => sleep(this.deps.clock, ms, signal), ...(this.deps.signal ? { signal: this.deps.signal } : {}) };
  }

  /** After a switch (new Ns) or a rollback (back to the N that served the version, else a new one). */
  async apply(changed: readonly ActivatedModel[], phase: 'switch' | 'rollback'): Promise<ServingOutcome> {
    const out: ServingOutcome = { unhealthy: [], reports: [] };
    for (const spec of this.deps.views) {
      const models = changed.filter((c) => spec.models.includes(c.model));
      if (models.length === 0) continue;
      const r = await this.applyView(spec, models.map((m) => ({ model: m.model, version: m.version, ...(m.from !== undefined ? { from: m.from } : {}) })), phase);
      out.unhealthy.push(...r.unhealthy);
      out.reports.push(...r.reports);
    }
    return out;
  }

  /**
   * Views that do not serve what the store has active (the first pass after
   * `serving:` was added, a `modelsync reconcile` that switched without the
   * agent, a version directory someone deleted): brought in line. Nothing
   * was switched, so a failure here is a warning, not a rollback.
   */
  async settle(): Promise<string[]> {
    const warnings: string[] = [];
    for (const spec of this.deps.views) {
      const repo = this.repo(spec);
      const behind: Array<{ model: string; version: string }> = [];
      for (const model of spec.models) {
        try {
          const active = await readLink(this.layout, model, 'current');
          if (!active) continue;
          const view = await repo.view(model);
          const onDisk = await repo.numbersOnDisk(model);
          if (servedVersion(view) === active && view.served !== undefined && onDisk.includes(view.served)) continue;
          behind.push({ model, version: active });
        } catch (err) {
          warnings.push(`${viewName(spec)}: ${model}: ${errorMessage(err)}`);
        }
      }
      if (behind.length > 0) {
        const r = await this.applyView(spec, behind, 'settle');
        for (const u of r.unhealthy) warnings.push(`${u.service}: ${u.models.join(', ')}: ${u.reason}`);
      }
      // Retention at the end of the pass, when the verdict is known: a switch judged unhealthy by a
      // service's check after its N loaded must still find the N before it on disk.
      for (const model of spec.models) {
        try {
          const removed = await repo.prune(model, spec.keep);
          if (removed.length) this.deps.logger.info({ view: spec.dir, model, removed }, `${viewName(spec)}: removed ${model} versions ${removed.join(', ')}`);
        } catch (err) {
          warnings.push(`${viewName(spec)}: retention of ${model}: ${errorMessage(err)}`);
        }
      }
    }
    return warnings;
  }

  private async applyView(
    spec: ServingViewSpec, models: ReadonlyArray<{ model: string; version: string; from?: string }>, phase: 'switch' | 'rollback' | 'settle',
  ): Promise<ServingOutcome> {
    const { logger, clock } = this.deps;
    const repo = this.repo(spec);
    const name = viewName(spec);
    const unhealthy: UnhealthyService[] = [];
    const reports: ServiceReport[] = [];
    const fail = (models: string[], reason: string): void => {
      unhealthy.push({ service: name, models, reason });
    };
    // 1. A version directory for each model: a new N, or on a rollback the N that served the version.
    const targets: Array<{ model: string; n: number; fresh: boolean }> = [];
    for (const m of models) {
      try {
        const view = await repo.view(m.model);
        const onDisk = await repo.numbersOnDisk(m.model);
        if (phase === 'rollback') {
          // The served N is the version being left: whatever judged it (the server or a health check), it is not a fallback.
          if (view.served !== undefined && m.from !== undefined && servedVersion(view) === m.from) await repo.markFailed(m.model, view.served);
          const back = fallbackFor(await repo.view(m.model), m.version, onDisk, view.served);
          if (back !== undefined) {
            targets.push({ model: m.model, n: back, fresh: false });
            continue;
          }
        }
        const staged = await repo.stage(m.model, m.version, this.layout.versionDir(m.model, m.version), new Date(clock.now()).toISOString());
        logger.info({ view: spec.dir, model: m.model, version: m.version, n: staged.n, linked: staged.linked, copied: staged.copied }, `${name}: ${m.model} ${m.version} is version ${staged.n}`);
        if (staged.copied > 0) logger.warn({ view: spec.dir, copied: staged.copied }, `${name} is on another filesystem than the store: files were copied (and verified), not hard-linked`);
        targets.push({ model: m.model, n: staged.n, fresh: true });
      } catch (err) {
        fail([m.model], errorMessage(err));
      }
    }
    // 2. The server's version policy, written atomically.
    try {
      await repo.point(targets);
    } catch (err) {
      fail(targets.map((t) => t.model), errorMessage(err));
      targets.length = 0;
    }
    // 3. Tell the server, then wait for readiness of each N.
    if (spec.url && targets.length > 0) {
      const base = spec.url.replace(/\/+$/, '');
      const timeoutMs = spec.timeout_s * 1000;
      const deadline = clock.now() + timeoutMs;
      const told = new Map<string, string>();
      if (spec.kind === 'ovms') {
        const a = await tellRuntime('ovms', base, '', timeoutMs, this.runtime());
        for (const t of targets) told.set(t.model, a.ok ? '' : a.message);
      } else {
        for (const t of targets) {
          const a = await tellRuntime('triton', base, t.model, Math.max(1000, deadline - clock.now()), this.runtime());
          told.set(t.model, a.ok ? '' : a.message);
        }
      }
      await Promise.all(targets.map(async (t) => {
        const startedAt = clock.now();
        const toldWhy = told.get(t.model) ?? '';
        // Triton's load answers for this model alone: a refusal is the verdict. OVMS's reload answers for
        // the whole file (another model of the operator's may be the one failing): readiness decides.
        const ready = spec.kind === 'triton' && toldWhy
          ? { ok: false, message: toldWhy, tries: 0 }
          : await waitReady(base, t.model, spec.ready === 'version' ? t.n : undefined, Math.max(1000, deadline - clock.now()), READY_INTERVAL_MS, this.runtime());
        const message = ready.ok ? `version ${t.n} ready` : spec.kind === 'ovms' && toldWhy ? `${toldWhy}; ${ready.message}` : ready.message;
        reports.push({
          service: name, models: [t.model], phase: phase === 'rollback' ? 'rollback' : 'switch', action: 'reload', actionOk: !toldWhy, actionMessage: toldWhy || `told to load version ${t.n}`,
          health: { ok: ready.ok, tries: ready.tries, ms: clock.now() - startedAt, message, ...(this.deps.signal?.aborted ? { aborted: true } : {}) }, at: clock.now(),
        });
        if (ready.ok) {
          logger.info({ view: spec.dir, model: t.model, n: t.n }, `${name}: ${t.model} version ${t.n} is ready`);
          if (toldWhy) logger.warn({ view: spec.dir, reason: toldWhy }, `${name}: the reload reported a problem, but ${t.model} version ${t.n} is ready`);
        } else {
          logger.error({ view: spec.dir, model: t.model, n: t.n, reason: message }, `${name}: ${t.model} version ${t.n} did not load`);
          if (phase === 'switch' && t.fresh) await repo.markFailed(t.model, t.n).catch(() => {});
          fail([t.model], this.deps.signal?.aborted ? `cut short: ${message}` : `version ${t.n} did not load: ${message}`);
        }
      }));
    }
    return { unhealthy, reports };
  }
}
