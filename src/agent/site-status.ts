/**
 * What the agent knows about its site between passes, and the one place a
 * pass's outcome becomes conditions and health: the /status document (also
 * reported to the hub) is built from here.
 */
import type { Logger } from '../log.ts';
import type { ReconcileResult } from '../reconcile/index.ts';
import { StoreLayout, readState } from '../store/index.ts';
import type { VerifyingEntry } from '../store/state.ts';
import { redactUrl } from '../util/redact.ts';
import { AGENT_VERSION, iso, type AgentStatus, type Condition, type Health, type PassOutcome } from './agent-types.ts';
import type { Clock } from './clock.ts';
import type { AgentConfig } from './config.ts';
import type { ServiceReport } from './hooks.ts';
import { capitalise, degradedWords, readyMessage } from './pass-words.ts';
import { nextCronRun } from './schedule.ts';
import { suggest } from '../registry/zod-problems.ts';
import type { SoakView } from './soak.ts';

/** The parts of /status other rooms of the agent own. */
export interface StatusSources {
  /** The cron expression in force. */
  schedule(): string;
  nextScheduledAt(): number | null | undefined;
  templates(): AgentStatus['templates'];
  selfHeal(): AgentStatus['selfHeal'];
  /** Undefined when the agent has no hub. */
  hub(): { connected: boolean; eventsError?: string; lastReportAt: number | null; lastReportError: string | null } | undefined;
  /** The registry answered again after a pass that could not reach it. */
  onRegistryBack(): void;
  /** Switches watched by a metric gate now (soak.ts). */
  soaks?(): SoakView[];
}

export class SiteStatus {
  phase: AgentStatus['phase'] = 'starting';
  last: PassOutcome | undefined;
  models: AgentStatus['models'] = [];
  serviceReports: ServiceReport[] = [];
  serviceProblems: AgentStatus['serviceProblems'] = [];
  /** Switches whose health verdict is owed (state.json's `verifying`): never Ready for them until judged. */
  owed: VerifyingEntry[] = [];
  lastSuccessAt: number | null = null;
  lastFetchAt: number | null = null;
  private unmanaged: AgentStatus['unmanaged'] = [];
  private commit: string | null = null;
  private appliedCommit: string | null = null;
  private readonly conditions = new Map<Condition['type'], Condition>();
  /** Set while a pass judges the versions it switched (services restarting, health checks running). */
  private judging: { switched: string[]; since: number } | undefined;
  private readonly startedAt: number;

  constructor(
    private readonly config: AgentConfig,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly sources: StatusSources,
  ) {
    this.startedAt = clock.now();
  }

  async loadRemembered(): Promise<void> {
    // Staleness survives restarts: it is measured from the store's record, not from process start.
    try {
      const { state } = await readState(new StoreLayout(this.config.store));
      if (state.lastFetchAt) this.lastFetchAt = Date.parse(state.lastFetchAt);
      if (state.appliedCommit) this.appliedCommit = state.appliedCommit;
      if (state.appliedAt) this.lastSuccessAt = Date.parse(state.appliedAt);
      this.commit = state.attemptedCommit ?? state.appliedCommit ?? null;
      this.owed = state.verifying;
    } catch {
      // No store yet.
    }
  }

  /** The pass re-reads what it records of a verdict it could not reach (a stop during the health checks). */
  async reloadOwed(): Promise<void> {
    this.owed = await readState(new StoreLayout(this.config.store)).then(({ state }) => state.verifying, () => this.owed);
  }

  /** From the switch until the verdict, the site is Progressing, not Ready. */
  beginJudging(switched: string[]): void {
    this.judging = { switched, since: this.clock.now() };
    this.setCondition('Ready', false, 'Progressing', `switched ${switched.join(', ')}; restarting services and checking their health`);
  }

  /** A finished pass: what it ran, its conditions and log lines for changes of health. */
  record(outcome: PassOutcome): void {
    const { result } = outcome;
    const prev = this.last?.result;
    this.last = outcome;
    this.judging = undefined;
    const now = outcome.finishedAt;
    if (result.commit) {
      this.commit = result.commit;
      // The same instant state.json records, so /status, the hub and `status --store` agree.
      const reached = result.registryReachedAt ? Date.parse(result.registryReachedAt) : NaN;
      this.lastFetchAt = Number.isFinite(reached) ? reached : now;
    }
    if (result.status !== 'failed') this.lastSuccessAt = now;
    if (result.errors.length === 0 && result.degraded.length === 0 && result.commit) this.appliedCommit = result.commit;
    if (result.models.length > 0 || result.unmanaged.length > 0) {
      this.unmanaged = result.unmanaged;
      this.models = result.models.map((m) => ({
        model: m.model, declared: m.declared, desired: m.desired, active: m.active ?? null,
        outcome: m.outcome, reason: m.reason, detail: m.detail, ...(m.drift ? { drift: m.drift } : {}),
      }));
    }
    for (const m of this.models) {
      const o = this.owed.find((v) => v.model === m.model && v.version === m.active);
      if (o) m.verdictOwed = { version: o.version, since: o.since };
      else delete m.verdictOwed;
    }
    this.updateConditions(result, prev);
  }

  private updateConditions(result: ReconcileResult, prev: ReconcileResult | undefined): void {
    const firstError = result.errors[0];
    const reached = result.commit !== undefined;
    this.setCondition('Ready', result.status === 'in-sync' || result.status === 'changed',
      result.status === 'failed' ? (firstError?.code ?? 'Failed') : result.status === 'in-sync' || result.status === 'changed' ? 'InSync' : capitalise(result.status),
      firstError ? firstError.message.split('\n')[0]! : readyMessage(result));
    // A switch whose health check was cut short is not judged yet: the site is not Ready (nor InSync) for it.
    if (this.owed.length > 0 && result.status !== 'failed') {
      const what = this.owed.map((v) => `${v.model} ${v.from ?? '-'} → ${v.version}`).join(', ');
      this.setCondition('Ready', false, 'VerdictOwed',
        `switched ${what}; health check owed (cut short before a verdict), the next pass restarts its services and checks again`);
    }
    // Stalled (untrusted): the tip is refused until the registry changes (a new commit), not retried.
    const untrusted = result.errors.find((e) => e.code === 'UntrustedCommit');
    if (this.config.verify) this.setCondition('Stalled', Boolean(untrusted), untrusted ? 'Untrusted' : 'None', untrusted ? untrusted.message.split('\n')[0]! : '');
    const degraded = result.degraded.length > 0;
    this.setCondition('Degraded', degraded, degraded ? 'HealthCheckFailed' : 'Healthy',
      degraded ? result.degraded.map((d) => `${d.model} ${d.version}: ${d.reason}`).join('; ') : '');
    const conflicted = result.conflicts.length > 0;
    this.setCondition('Conflict', conflicted, conflicted ? 'LocalChangeNewer' : 'None', result.conflicts.map((c) => c.detail).join('; '));
    const waiting = result.models.filter((m) => m.outcome === 'waiting');
    this.setCondition('Waiting', waiting.length > 0, waiting.length ? 'Window' : 'None',
      waiting.length ? `${waiting.map((m) => `${m.model} ${m.from ?? '-'} → ${m.desired}`).join(', ')} fetched and verified; switching when the maintenance window opens${result.waitUntil ? ` (${result.waitUntil})` : ''}` : '');
    const staleness = this.stalenessSeconds();
    const stale = this.isStale(result, staleness);
    this.setCondition('Stale', stale, stale ? 'RegistryUnreachable' : 'Fresh',
      stale ? `registry last reached ${this.lastFetchAt ? `${Math.round(staleness ?? 0)} s ago` : 'never'}${firstError ? `: ${firstError.message.split('\n')[0]}` : ''}; serving what is active` : '');

    if (degraded && !(prev && prev.degraded.length > 0)) {
      this.logger.error({ degraded: result.degraded }, `site DEGRADED: ${degradedWords(result)}`);
    } else if (!degraded && prev && prev.degraded.length > 0) {
      this.logger.info({ was: prev.degraded.map((d) => `${d.model} ${d.version}`) }, 'site recovered: no degraded models');
    }
    if (reached && prev && prev.commit === undefined) {
      this.logger.info('registry reachable again');
      this.sources.onRegistryBack();
    }
  }

  setCondition(type: Condition['type'], status: boolean, reason: string, message: string): void {
    const old = this.conditions.get(type);
    const since = old && old.status === status ? old.since : new Date(this.clock.now()).toISOString();
    this.conditions.set(type, { type, status, reason, message, since });
  }

  stalenessSeconds(): number | null {
    return this.lastFetchAt === null ? null : Math.max(0, (this.clock.now() - this.lastFetchAt) / 1000);
  }

  /** Two schedule periods (at least five minutes): a pull missed once is normal, twice is not. */
  staleAfterSeconds(): number {
    const expr = this.sources.schedule();
    const now = this.clock.now();
    const a = nextCronRun(expr, now);
    const b = a === null ? null : nextCronRun(expr, a);
    const period = a !== null && b !== null ? (b - a) / 1000 : 900;
    return Math.max(300, 2 * period + this.config.jitter_s);
  }

  /**
   * The registry view is stale when the last pass could not reach the
   * registry, or the last contact is too old. A pass stopped by the site
   * itself before it tried (the store locked by a gc, a store error) says
   * nothing about the registry: then only the age counts.
   */
  private isStale(result: ReconcileResult, staleness: number | null): boolean {
    if (staleness === null) return true;
    if (staleness > this.staleAfterSeconds()) return true;
    if (result.commit !== undefined) return false;
    const local = result.errors.length > 0 && result.errors.every((e) => e.code === 'LockedError' || e.code === 'StoreError');
    return !local;
  }

  health(): Health {
    const c = (t: Condition['type']): boolean => this.conditions.get(t)?.status ?? false;
    if (!this.last || this.judging) return 'Progressing';
    if (c('Degraded')) return 'Degraded';
    if (c('Stalled')) return 'Stalled';
    if (c('Stale')) return 'Stale';
    if (this.last.result.status === 'failed') return 'Failed';
    // Switched but not judged (a health check cut short): still on its way, never Ready.
    if (this.owed.length > 0) return 'Progressing';
    // Switched and healthy so far, a metric gate still watching: not Ready until it passes.
    if ((this.sources.soaks?.() ?? []).length > 0) return 'Progressing (soak)';
    if (c('Conflict')) return 'Conflict';
    if (c('Waiting')) return 'Waiting';
    return 'Ready';
  }

  document(): AgentStatus {
    const staleness = this.stalenessSeconds();
    if (this.conditions.has('Stale') && this.last) {
      // Staleness grows between passes: re-evaluate on read.
      const was = this.conditions.get('Stale')!;
      const stale = this.isStale(this.last.result, staleness);
      if (stale !== was.status) this.setCondition('Stale', stale, stale ? 'RegistryUnreachable' : 'Fresh', stale ? `registry last reached ${Math.round(staleness ?? 0)} s ago; serving what is active` : '');
    }
    const hub = this.sources.hub();
    if (hub) {
      this.setCondition('HubConnected', hub.connected, hub.connected ? 'Subscribed' : 'Disconnected', hub.connected ? '' : (hub.eventsError ?? 'not connected yet'));
    }
    const r = this.last?.result;
    const soaks = this.sources.soaks?.() ?? [];
    return {
      site: this.config.site,
      agent: { version: AGENT_VERSION, pid: process.pid, startedAt: iso(this.startedAt)! },
      registry: /^https?:\/\//i.test(this.config.registry) ? redactUrl(this.config.registry) : this.config.registry,
      branch: this.config.branch,
      health: this.health(),
      conditions: soakConditions([...this.conditions.values()], soaks, this.clock.now()),
      phase: this.phase,
      commit: this.commit,
      appliedCommit: this.appliedCommit,
      lastPass: this.last && r
        ? {
          startedAt: iso(this.last.startedAt)!,
          finishedAt: iso(this.last.finishedAt)!,
          status: r.status,
          durationMs: r.durationMs,
          triggers: [...new Set(this.last.triggers.map((t) => t.source))],
          changed: r.changed,
          rolledBack: r.rolledBack,
          conflicts: r.conflicts,
          degraded: r.degraded,
          errors: r.errors.slice(0, 10).map((e) => ({ code: e.code, message: e.message.slice(0, 2000), ...(e.model ? { model: e.model } : {}) })),
          bytesFetched: r.bytesFetched,
        }
        : null,
      lastSuccessAt: iso(this.lastSuccessAt),
      lastFetchAt: iso(this.lastFetchAt),
      stalenessSeconds: staleness === null ? null : Math.round(staleness),
      staleAfterSeconds: this.staleAfterSeconds(),
      schedule: this.sources.schedule(),
      nextScheduledAt: iso(this.sources.nextScheduledAt()),
      models: withSoaks(this.models, soaks),
      unmanaged: this.unmanaged,
      services: this.serviceReports,
      serviceProblems: this.serviceProblems,
      templates: this.sources.templates(),
      selfHeal: this.sources.selfHeal(),
      hub: this.config.hub && hub
        ? { url: redactUrl(this.config.hub), connected: hub.connected, lastReportAt: iso(hub.lastReportAt), lastReportError: hub.lastReportError }
        : null,
      lastError: r?.errors[0] ? `${r.errors[0].code}: ${r.errors[0].message.split('\n')[0]}` : null,
    };
  }
}

/** The words of a soak: "face 1 → 2 (sentinel): soaking: 1m of 10m, …". */
function soakWords(soaks: readonly SoakView[]): string {
  return soaks.map((s) => `${s.models.map((m) => `${m.model} ${m.from ?? '-'} → ${m.version}`).join(', ')} (${s.service}): ${s.reason}`).join('; ');
}

/**
 * While a metric gate watches, Ready is false (reason Soak) and a
 * Progressing condition says what is watched; the stored conditions are not
 * changed, so the site is InSync again the moment the last soak passes.
 */
function soakConditions(conditions: Condition[], soaks: readonly SoakView[], now: number): Condition[] {
  if (soaks.length === 0) return conditions;
  const since = new Date(Math.min(...soaks.map((s) => Date.parse(s.since)).filter(Number.isFinite), now)).toISOString();
  const message = soakWords(soaks);
  const out = conditions.map((c) => (c.type === 'Ready' ? { type: c.type, status: false, reason: 'Soak', message, since } : c));
  if (!out.some((c) => c.type === 'Ready')) out.unshift({ type: 'Ready', status: false, reason: 'Soak', message, since });
  out.push({ type: 'Progressing', status: true, reason: 'Soak', message, since });
  return out;
}

function withSoaks(models: AgentStatus['models'], soaks: readonly SoakView[]): AgentStatus['models'] {
  if (soaks.length === 0) return models;
  return models.map((m) => {
    const s = soaks.find((x) => x.models.some((y) => y.model === m.model && y.version === m.active));
    if (!s) return m;
    return { ...m, soak: { version: m.active!, service: s.service, since: s.since, until: s.until, state: s.state, reason: s.reason, overdue: s.overdue, ...(s.last !== undefined ? { last: s.last } : {}) } };
  });
}

/** Each service model the site does not run, with the words of the warning (start, every pass, /status, the hub). */
export function serviceModelProblems(config: Pick<AgentConfig, 'services'>, siteModels: ReadonlySet<string>): AgentStatus['serviceProblems'] {
  const out: AgentStatus['serviceProblems'] = [];
  const known = [...siteModels].sort();
  for (const s of config.services) {
    for (const model of s.models) {
      if (siteModels.has(model)) continue;
      out.push({
        service: s.name,
        model,
        message: `service ${s.name} names model ${model}, which this site does not run${suggest(model, known)}: it is never restarted or health-checked for a switch (site models: ${known.join(', ') || 'none'})`,
      });
    }
  }
  return out;
}
