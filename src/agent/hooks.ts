/**
 * ActivationHooks built from agent.yaml: what the reconcile pass calls after
 * it switched `current` (render templates, restart or reload the services
 * whose models changed, health-check them) and after it switched unhealthy
 * models back (render and restart again).
 */
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ActivatedModel, ActivationHooks, UnhealthyService } from '../reconcile/hooks.ts';
import type { ServiceSpec } from '../registry/schema.ts';
import type { Clock } from './clock.ts';
import { checkHealth, type HealthResult } from './health.ts';
import { applyService, type ServiceActionResult } from './services.ts';
import type { SoakStart } from './soak.ts';

export interface ServiceReport {
  service: string;
  models: string[];
  phase: 'switch' | 'rollback';
  action: ServiceActionResult['action'];
  actionOk: boolean;
  actionMessage: string;
  health?: { ok: boolean; tries: number; ms: number; message: string; aborted?: boolean };
  at: number;
}

export interface HookDeps {
  services: readonly ServiceSpec[];
  fetch: typeof fetch;
  clock: Clock;
  logger: Logger;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /**
   * Renders the templates of these models before services restart, so a
   * restarted service reads config that names the new versions. Returns
   * messages of templates that failed (their services count as unhealthy).
   */
  renderTemplates?(models: readonly ActivatedModel[], phase: 'switch' | 'rollback'): Promise<Array<{ models: string[]; message: string }>>;
  /** Serving views (src/agent/serving.ts): new version directories, the server told and its readiness awaited, before services restart. */
  serving?(models: readonly ActivatedModel[], phase: 'switch' | 'rollback'): Promise<{ unhealthy: UnhealthyService[]; reports: ServiceReport[] }>;
}

export interface AgentHooks extends ActivationHooks {
  /** What happened to services in this pass, for /status and the hub. */
  readonly reports: ServiceReport[];
  /** Services switched healthy whose metric gate is watched next (soak.ts), after the pass. */
  readonly soaks: SoakStart[];
}

/**
 * The health check after a rollback is for the record: whatever it says,
 * nothing more is switched. The version gone back to ran before, so it gets
 * half the timeout (at least 5 s, at most the timeout): a degraded pass
 * spends at most 1.5 × timeout_s checking, not twice.
 */
export function rollbackHealthSpec<H extends { timeout_s: number }>(h: H): H {
  return { ...h, timeout_s: Math.min(h.timeout_s, Math.max(5, h.timeout_s / 2)) };
}

/** The services that use any of `models`, each once, in agent.yaml order. */
export function affectedServices(services: readonly ServiceSpec[], models: Iterable<string>): ServiceSpec[] {
  const set = new Set(models);
  return services.filter((s) => s.models.some((m) => set.has(m)));
}

export function buildActivationHooks(deps: HookDeps): AgentHooks {
  const reports: ServiceReport[] = [];
  const soaks: SoakStart[] = [];

  const restartAndCheck = async (
    changed: readonly ActivatedModel[], phase: 'switch' | 'rollback',
  ): Promise<UnhealthyService[]> => {
    const names = changed.map((c) => c.model);
    const templateFailures = deps.renderTemplates ? await deps.renderTemplates(changed, phase).catch((err: unknown) => [{ models: names, message: `templates: ${errorMessage(err)}` }]) : [];
    const services = affectedServices(deps.services, names);
    const unhealthy: UnhealthyService[] = [];
    if (deps.serving) {
      const served = await deps.serving(changed, phase).catch((err: unknown) => ({ unhealthy: [{ service: 'serving', models: names, reason: errorMessage(err) }], reports: [] }));
      reports.push(...served.reports);
      unhealthy.push(...served.unhealthy);
    }
    // Restarts run one after another: two services restarting at once on a small edge box is
    // how a brown-out starts. Health checks then run together, each within its own timeout.
    const restarted: Array<{ spec: ServiceSpec; report: ServiceReport }> = [];
    for (const spec of services) {
      const models = spec.models.filter((m) => names.includes(m));
      // No stop signal: a restart in progress finishes (bounded by its timeout) even when the agent is stopping.
      const result = await applyService(spec, { fetch: deps.fetch, env: deps.env });
      const report: ServiceReport = {
        service: spec.name, models, phase, action: result.action, actionOk: result.ok, actionMessage: result.message, at: deps.clock.now(),
      };
      reports.push(report);
      const log = { service: spec.name, models, action: result.action, ms: result.ms };
      if (result.ok) deps.logger.info(log, `${spec.name}: ${result.message}`);
      else deps.logger.error({ ...log, reason: result.message }, `${spec.name}: ${result.action} failed`);
      if (!result.ok) unhealthy.push({ service: spec.name, models, reason: result.message });
      else restarted.push({ spec, report });
    }
    const checks = await Promise.all(
      restarted.map(async ({ spec, report }) => {
        if (!spec.health) return { spec, report, health: undefined as HealthResult | undefined };
        // A metric gate judges a switch over its `for`, outside the pass: the soak starts once the pass ends.
        if (spec.health.metric && phase === 'switch') {
          soaks.push({ service: spec.name, gate: spec.health.metric, models: changed.filter((c) => report.models.includes(c.model)).map((c) => ({ model: c.model, version: c.version, from: c.from, previousBefore: c.previousBefore })) });
          report.health = { ok: true, tries: 0, ms: 0, message: `metric gate: soaking for ${spec.health.metric.for}` };
          return { spec, report, health: undefined as HealthResult | undefined };
        }
        const check = phase === 'rollback' ? rollbackHealthSpec(spec.health) : spec.health;
        const health = await checkHealth(check, { fetch: deps.fetch, clock: deps.clock, env: deps.env, signal: deps.signal });
        report.health = { ok: health.ok, tries: health.tries, ms: health.ms, message: health.message, ...(health.aborted ? { aborted: true } : {}) };
        return { spec, report, health };
      }),
    );
    for (const { spec, report, health } of checks) {
      if (!health) continue;
      const log = { service: spec.name, models: report.models, tries: health.tries, ms: health.ms };
      if (health.ok) deps.logger.info(log, `${spec.name}: healthy`);
      else if (health.aborted) {
        // Not a failure: the pass sees the stop and owes the verdict (no rollback, no Degraded).
        deps.logger.warn(log, `${spec.name}: health check cut short (the agent is stopping); the verdict is owed to the next pass`);
        unhealthy.push({ service: spec.name, models: report.models, reason: health.message });
      } else {
        deps.logger.error({ ...log, reason: health.message }, `${spec.name}: health check failed`);
        unhealthy.push({ service: spec.name, models: report.models, reason: `health check failed: ${health.message}` });
      }
    }
    // A template that did not render means its services run with stale config: as bad as unhealthy.
    for (const f of templateFailures) {
      for (const spec of affectedServices(deps.services, f.models)) {
        if (unhealthy.some((u) => u.service === spec.name)) continue;
        unhealthy.push({ service: spec.name, models: spec.models.filter((m) => f.models.includes(m)), reason: f.message });
      }
    }
    return unhealthy;
  };

  return {
    reports,
    soaks,
    async afterSwitch(changed) {
      return { unhealthy: await restartAndCheck(changed, 'switch') };
    },
    async afterRollback(rolledBack) {
      const still = await restartAndCheck(rolledBack, 'rollback');
      for (const u of still) {
        deps.logger.error({ service: u.service, reason: u.reason }, `${u.service} is still unhealthy after the rollback`);
      }
    },
  };
}
