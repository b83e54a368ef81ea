/**
 * `modelsync agent`: turns one reconcile pass into a self-driving deployment.
 *
 * Triggers (start, cron schedule with jitter, hub events, webhook, a watch on
 * a local registry, self-heal, retry after failure) all go through one
 * PassQueue: one pass at a time, bursts coalesced. Each pass runs the same
 * `reconcile()` the CLI runs, with hooks built from agent.yaml (templates,
 * restarts, health checks). `afterPass` is the one place that turns the
 * outcome into conditions, metrics, the next retry and a report to the hub.
 *
 * Everything from outside (clock, fetch, randomness, the reconcile itself) is
 * passed in, so tests drive the schedule with a controlled clock and talk to
 * real servers on loopback.
 */
import { promises as fsp } from 'node:fs';
import { relative, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { errorMessage } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { reconcile as defaultReconcile, type ReconcileOptions, type ReconcileResult } from '../reconcile/index.ts';
import type { ActivatedModel, PassInfo } from '../reconcile/hooks.ts';
import { passError } from '../reconcile/result.ts';
import { splitCredentials } from '../reconcile/registry-access.ts';
import { findGitDir } from '../registry/source.ts';
import { StoreLayout, readLink, readState } from '../store/index.ts';
import type { VerifyingEntry } from '../store/state.ts';
import { templateContext } from '../templates/index.ts';
import { redactUrl } from '../util/redact.ts';
import { Backoff, systemClock, type Clock, type TimerHandle } from './clock.ts';
import { parseListen, readSecretFile, readToken, stripHubCredentials, type AgentConfig } from './config.ts';
import { requestErrorMessage } from './net-error.ts';
import { EventSubscriber, type ServerSentEvent } from './events.ts';
import { buildActivationHooks, type ServiceReport } from './hooks.ts';
import { emptyMetrics, renderMetrics, type AgentMetrics } from './metrics.ts';
import { PassQueue, QueueClosedError, type Trigger, type TriggerSource } from './queue.ts';
import { DEFAULT_SCHEDULE, CronTrigger, nextCronRun } from './schedule.ts';
import { SelfHealer, type Damage } from './selfheal.ts';
import { startAgentServer, type AgentServer } from './server.ts';
import { defaultEngine, renderTemplates, type RenderOutcome, type TemplateEngine } from './templates.ts';
import { guardedPaths, type GuardedPath } from './guarded-paths.ts';

export const AGENT_VERSION = '0.1.0';
/** How long the last report on shutdown may take. */
const STOP_REPORT_TIMEOUT_MS = 3000;

export interface AgentDeps {
  clock?: Clock;
  fetch?: typeof fetch;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  random?: () => number;
  /** The pass (default: src/reconcile). */
  reconcile?: (opts: ReconcileOptions) => Promise<ReconcileResult>;
  templateEngine?: TemplateEngine;
  /** Retry after a failed pass: first delay and ceiling (default 2 s … 5 min). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Hub event stream reconnect backoff (default 500 ms … 60 s). */
  eventsBackoffBaseMs?: number;
  eventsBackoffMaxMs?: number;
  /** Quiet period for file-watch triggers (default 250 ms). */
  watchDebounceMs?: number;
  selfHealDebounceMs?: number;
  /** Told about every finished pass (the demo and benchmarks time convergence with it). */
  onPass?(outcome: PassOutcome): void;
}

export interface PassOutcome {
  result: ReconcileResult;
  triggers: Trigger[];
  /** Clock times. */
  startedAt: number;
  finishedAt: number;
}

export type Health = 'Progressing' | 'Ready' | 'Conflict' | 'Stale' | 'Failed' | 'Degraded';

export interface Condition {
  type: 'Ready' | 'Degraded' | 'Conflict' | 'Stale' | 'HubConnected';
  status: boolean;
  reason: string;
  message: string;
  /** ISO time of the last change of status. */
  since: string;
}

/** The document served at /status and reported to the hub after every pass. */
export interface AgentStatus {
  site: string;
  agent: { version: string; pid: number; startedAt: string };
  registry: string;
  branch: string;
  health: Health;
  conditions: Condition[];
  phase: 'starting' | 'idle' | 'reconciling' | 'stopping' | 'stopped';
  commit: string | null;
  appliedCommit: string | null;
  lastPass: {
    startedAt: string;
    finishedAt: string;
    status: ReconcileResult['status'];
    durationMs: number;
    triggers: string[];
    changed: ReconcileResult['changed'];
    rolledBack: ReconcileResult['rolledBack'];
    conflicts: ReconcileResult['conflicts'];
    degraded: ReconcileResult['degraded'];
    errors: Array<{ code: string; message: string; model?: string }>;
    bytesFetched: number;
  } | null;
  lastSuccessAt: string | null;
  lastFetchAt: string | null;
  /** Seconds since the registry was last reached (null: never). */
  stalenessSeconds: number | null;
  staleAfterSeconds: number;
  schedule: string;
  nextScheduledAt: string | null;
  models: Array<{
    model: string;
    declared: string;
    desired: string;
    active: string | null;
    outcome: string;
    reason: string;
    detail: string;
    drift?: string;
    /** Switched to `active`, but its services' health verdict is owed (a check cut short by a stop): not yet in sync. */
    verdictOwed?: { version: string; since: string };
  }>;
  /** Models in the store the site no longer selects: kept as they are, not managed. */
  unmanaged: ReconcileResult['unmanaged'];
  services: ServiceReport[];
  templates: Array<Pick<RenderOutcome, 'src' | 'dest' | 'status' | 'message'>>;
  selfHeal: { restored: number; recent: Damage[]; lastVerifyAt: string | null };
  hub: { url: string; connected: boolean; lastReportAt: string | null; lastReportError: string | null } | null;
  lastError: string | null;
}

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export class Agent {
  readonly site: string;
  private readonly clock: Clock;
  private readonly fetchImpl: typeof fetch;
  private readonly logger: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private readonly random: () => number;
  private readonly reconcileImpl: (opts: ReconcileOptions) => Promise<ReconcileResult>;
  private readonly engine: TemplateEngine;
  private readonly queue: PassQueue<PassOutcome>;
  private readonly retryBackoff: Backoff;
  private readonly passAbort = new AbortController();
  private readonly reportAbort = new AbortController();
  private readonly deps: AgentDeps;
  private token: string | undefined;
  private webhookSecret: string | undefined;

  private cron: CronTrigger | undefined;
  private events: EventSubscriber | undefined;
  private server: AgentServer | undefined;
  private healer: SelfHealer | undefined;
  private registryWatch: FSWatcher | undefined;
  private watchTimer: TimerHandle | undefined;
  private pinsWatch: FSWatcher | undefined;
  private pinsTimer: TimerHandle | undefined;
  private retryTimer: TimerHandle | undefined;
  private started = false;
  private stopping = false;

  private phase: AgentStatus['phase'] = 'starting';
  private readonly startedAt: number;
  private last: PassOutcome | undefined;
  private models: AgentStatus['models'] = [];
  private unmanaged: AgentStatus['unmanaged'] = [];
  private commit: string | null = null;
  private appliedCommit: string | null = null;
  private lastSuccessAt: number | null = null;
  private lastFetchAt: number | null = null;
  private serviceReports: ServiceReport[] = [];
  private templateOutcomes: RenderOutcome[] = [];
  private readonly conditions = new Map<Condition['type'], Condition>();
  private readonly metrics: AgentMetrics = emptyMetrics();
  private reporting: Promise<void> | undefined;
  private reportAgain = false;
  private lastReportAt: number | null = null;
  private lastReportError: string | null = null;
  private templatesWarned = false;
  /** Set while a pass judges the versions it switched (services restarting, health checks running). */
  private judging: { switched: string[]; since: number } | undefined;
  /** Switches whose health verdict is owed (state.json's `verifying`): never Ready for them until judged. */
  private owed: VerifyingEntry[] = [];

  private constructor(readonly config: AgentConfig, deps: AgentDeps) {
    this.site = config.site;
    this.clock = deps.clock ?? systemClock;
    this.fetchImpl = deps.fetch ?? fetch;
    this.logger = deps.logger ?? silentLogger;
    this.env = deps.env ?? process.env;
    this.random = deps.random ?? Math.random;
    this.reconcileImpl = deps.reconcile ?? defaultReconcile;
    this.engine = deps.templateEngine ?? defaultEngine;
    this.deps = deps;
    this.startedAt = this.clock.now();
    this.retryBackoff = new Backoff(deps.retryBaseMs ?? 2000, deps.retryMaxMs ?? 300_000, this.random);
    this.queue = new PassQueue((triggers) => this.runPass(triggers));
  }

  /** Build an agent: reads the token and webhook secret (errors name the file, never the content). */
  static async create(config: AgentConfig, deps: AgentDeps = {}): Promise<Agent> {
    config = stripHubCredentials(config);
    const agent = new Agent(config, deps);
    agent.token = (await readToken(config, agent.env)) ?? config.hubToken;
    // A registry URL with the token in it (https://x:<token>@hub/registry.git) serves the same hub's events and reports.
    if (agent.token === undefined && config.hub && /^https?:\/\//i.test(config.registry)) {
      const { url, token } = splitCredentials(config.registry);
      if (token && new URL(url).origin === new URL(config.hub).origin) agent.token = token;
    }
    if (config.webhook_secret_file) agent.webhookSecret = await readSecretFile(config.webhook_secret_file, 'webhook_secret_file');
    await agent.loadRemembered();
    return agent;
  }

  /** Where the agent's HTTP server listens (once started with `listen`). */
  get url(): string | undefined {
    return this.server?.url;
  }

  get passes(): number {
    return this.queue.passes;
  }

  /** One pass with services and health checks, a report to the hub, then done (`agent --once`). */
  async once(): Promise<PassOutcome> {
    const outcome = await this.queue.request({ source: 'manual', detail: '--once', at: this.clock.now() });
    await this.flushReport();
    return outcome;
  }

  /** Start the server, the triggers and the first pass (not awaited: see whenIdle). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const cfg = this.config;
    if (cfg.listen) {
      const l = parseListen(cfg.listen)!;
      if (!this.webhookSecret && !isLoopback(l.host)) {
        this.logger.warn({ listen: cfg.listen }, 'the webhook listens beyond loopback without webhook_secret_file: anyone who reaches it can trigger passes (they only ever fetch from Git)');
      }
      this.server = await startAgentServer(l.host, l.port, {
        status: () => this.status(),
        metrics: () => this.metricsText(),
        webhookSecret: this.webhookSecret,
        onWebhook: (hint) => {
          const started = !this.queue.running;
          this.fire('webhook', hint);
          return { started };
        },
        logger: this.logger,
      });
      this.logger.info({ url: this.server.url }, 'agent listening (/status, /healthz, /metrics, POST /api/v1/reconcile)');
    }

    this.healer = new SelfHealer({
      store: cfg.store,
      clock: this.clock,
      logger: this.logger,
      verifyIntervalMs: cfg.verify_interval_s * 1000,
      debounceMs: this.deps.selfHealDebounceMs,
      busy: () => this.queue.running,
      requestPass: (detail) => this.request('selfheal', detail),
      onDamage: () => this.reportSoon(),
    });
    await this.healer.start();
    await this.watchPins();

    this.cron = new CronTrigger({
      expression: cfg.schedule ?? DEFAULT_SCHEDULE,
      jitterMs: cfg.jitter_s * 1000,
      clock: this.clock,
      random: this.random,
      onFire: (slot) => this.fire('schedule', new Date(slot).toISOString()),
    });
    this.cron.start();

    if (cfg.hub) this.startEvents(cfg.hub);
    if (!/^https?:\/\//i.test(cfg.registry)) await this.watchLocalRegistry(cfg.registry);

    this.fire('start');
  }

  /** Ask for a pass; resolves when the pass that covers this request finished. */
  request(source: TriggerSource, detail?: string, commit?: string): Promise<PassOutcome> {
    const m = this.metrics.triggersTotal;
    m[source] = (m[source] ?? 0) + 1;
    this.logger.debug({ trigger: source, detail }, 'pass requested');
    return this.queue.request({ source, detail, at: this.clock.now(), ...(commit ? { commit } : {}) });
  }

  /** Resolves once no pass runs and none is queued. */
  whenIdle(): Promise<void> {
    return this.queue.idle();
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.phase = 'stopping';
    this.cron?.stop();
    this.events?.stop();
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.watchTimer);
    this.clock.clearTimeout(this.pinsTimer);
    await this.registryWatch?.close();
    await this.pinsWatch?.close();
    await this.healer?.stop();
    // Downloads in progress stop (they resume next time); switches and restarts finish.
    this.passAbort.abort(new Error('the agent is stopping'));
    await this.queue.close();
    // A report still in flight is superseded by the last one below: don't wait out its 10 s.
    this.reportAbort.abort(new Error('superseded by the last report'));
    await this.flushReport();
    // Always a last report, even when stopped while idle: the hub must not keep showing "reconciling".
    // Bounded: a hub that does not answer must not hold up a systemd stop.
    this.phase = 'stopped';
    if (this.config.hub) await this.sendReport(true);
    await this.server?.close();
  }

  private fire(source: TriggerSource, detail?: string, commit?: string): void {
    if (this.stopping) return;
    this.request(source, detail, commit).catch((err: unknown) => {
      if (!(err instanceof QueueClosedError)) this.logger.error({ err: errorMessage(err) }, 'pass failed');
    });
  }

  // ------------------------------------------------------------------ the pass

  private async runPass(triggers: Trigger[]): Promise<PassOutcome> {
    this.phase = 'reconciling';
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const startedAt = this.clock.now();
    let info: PassInfo | undefined;
    const hooks = buildActivationHooks({
      services: this.config.services,
      fetch: this.fetchImpl,
      clock: this.clock,
      logger: this.logger,
      env: this.env,
      signal: this.passAbort.signal,
      renderTemplates: async (models: readonly ActivatedModel[]) => this.renderTemplates(info, new Set(models.map((m) => m.model))),
    });
    hooks.onRegistry = (i) => {
      info = i;
    };
    // From the switch until the verdict, the site is Progressing, not Ready: tell /status and the hub at once.
    const afterSwitch = hooks.afterSwitch.bind(hooks);
    hooks.afterSwitch = async (changed) => {
      this.judging = { switched: changed.map((c) => `${c.model} ${c.from ?? '-'} → ${c.version}`), since: this.clock.now() };
      this.setCondition('Ready', false, 'Progressing', `switched ${this.judging.switched.join(', ')}; restarting services and checking their health`);
      this.reportSoon();
      return afterSwitch(changed);
    };
    // Templates whose inputs changed without a switch (template text, site labels, a deleted output), under the lock.
    hooks.settle = async () => ({ warnings: (await this.renderTemplates(info, new Set())).map((f) => f.message) });
    let result: ReconcileResult;
    const expectedCommit = [...triggers].reverse().find((t) => t.commit)?.commit;
    try {
      result = await this.reconcileImpl({
        site: this.config.site,
        registry: this.config.registry,
        branch: this.config.branch,
        store: this.config.store,
        token: this.token,
        expectedCommit,
        hooks,
        concurrency: this.config.concurrency,
        logger: this.logger,
        signal: this.passAbort.signal,
      });
    } catch (err) {
      result = failedResult(this.config, err, startedAt);
    }
    if (hooks.reports.length > 0) this.serviceReports = hooks.reports.slice(-20);
    // The pass records a verdict it could not reach (a stop during the health checks) in state.json.
    this.owed = await readState(new StoreLayout(this.config.store)).then(({ state }) => state.verifying, () => this.owed);
    const outcome: PassOutcome = { result, triggers, startedAt, finishedAt: this.clock.now() };
    // Before afterPass: the report it sends says what the agent does now, not "reconciling".
    this.phase = this.stopping ? 'stopping' : 'idle';
    this.afterPass(outcome, info);
    try {
      this.deps.onPass?.(outcome);
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'onPass listener failed');
    }
    return outcome;
  }

  /** Render the site's templates; returns failures (their services count as unhealthy after a switch). */
  private async renderTemplates(info: PassInfo | undefined, changed: ReadonlySet<string>): Promise<Array<{ models: string[]; message: string }>> {
    if (!info || !this.config.templates || info.site.templates.length === 0) return [];
    if (!this.config.config_dir) {
      if (!this.templatesWarned) this.logger.warn({ templates: info.site.templates.length }, 'the site declares templates but agent.yaml sets no config_dir; they are not rendered');
      this.templatesWarned = true;
      return [];
    }
    const layout = new StoreLayout(this.config.store);
    const models: Array<{ name: string; version: string; dir: string; files: Array<{ name: string; sha256: string; size: number }> }> = [];
    for (const d of info.desired) {
      const version = await readLink(layout, d.model, 'current').catch(() => undefined);
      if (!version) continue;
      // The desired version's files are in the pass's desired state; another active version (a conflict,
      // a rollback after a failed health check) needs its manifest, so only then is the registry read.
      const files = version === d.version && d.files
        ? d.files.map((f) => ({ name: f.name, sha256: f.oid, size: f.size }))
        : ((await info.loadRegistry()).models.get(d.model)?.versions.get(version)?.manifest.files ?? []).map((f) => ({ name: f.name, sha256: f.sha256, size: f.size }));
      models.push({ name: d.model, version, dir: layout.versionDir(d.model, version), files });
    }
    const context = templateContext({ site: { name: info.site.name, labels: info.site.labels }, models });
    const outcomes = await renderTemplates(
      {
        specs: info.site.templates,
        readSource: (src) => info.source.readText(src),
        context,
        configDir: this.config.config_dir,
        changedModels: changed,
        protectedPaths: this.ownFiles(),
      },
      this.engine,
    );
    for (const o of outcomes) {
      if (o.status === 'written') this.logger.info({ src: o.src, dest: o.dest }, 'template rendered');
      if (o.status === 'error') this.logger.error({ src: o.src, dest: o.dest, reason: o.message }, 'template not rendered; the previous file stays');
    }
    // Remember the latest outcome per destination.
    const byDest = new Map(this.templateOutcomes.map((o) => [o.dest, o]));
    for (const o of outcomes) if (o.status !== 'skipped' || !byDest.has(o.dest)) byDest.set(o.dest, o);
    this.templateOutcomes = [...byDest.values()];
    return outcomes.filter((o) => o.status === 'error').map((o) => ({ models: o.models, message: o.message ?? 'template failed' }));
  }

  /** Files that decide what this site executes or who it is: no template may write them. */
  private ownFiles(): GuardedPath[] {
    return guardedPaths(this.config);
  }

  // ------------------------------------------------------------------ after a pass

  private afterPass(outcome: PassOutcome, info: PassInfo | undefined): void {
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
    // The site file's schedule applies unless agent.yaml sets one.
    if (info?.site.schedule && !this.config.schedule && this.cron) {
      try {
        this.cron.setExpression(info.site.schedule);
      } catch (err) {
        this.logger.warn({ schedule: info.site.schedule, err: errorMessage(err) }, 'site schedule unusable; keeping the current one');
      }
    }

    const m = this.metrics;
    m.lastPassDurationSeconds = result.durationMs / 1000;
    m.passesTotal[result.status === 'failed' ? 'error' : result.status === 'degraded' ? 'degraded' : result.status === 'conflict' ? 'conflict' : 'ok']++;
    m.bytesFetchedTotal += result.bytesFetched;
    m.coalescedTotal = this.queue.coalesced;
    m.conflicts = result.conflicts.length;
    m.degraded = result.degraded.length > 0;
    m.healsTotal = this.healer?.healed ?? 0;
    if (this.lastSuccessAt !== null) m.lastSuccessTimestamp = this.lastSuccessAt / 1000;
    if (this.lastFetchAt !== null) m.lastFetchTimestamp = this.lastFetchAt / 1000;
    m.models = this.models.map((x) => ({ model: x.model, declared: x.declared, active: x.active ?? undefined, inSync: x.active === x.desired && !x.verdictOwed }));

    this.updateConditions(result, prev);
    this.scheduleRetry(result);
    this.reportSoon();
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
    const degraded = result.degraded.length > 0;
    this.setCondition('Degraded', degraded, degraded ? 'HealthCheckFailed' : 'Healthy',
      degraded ? result.degraded.map((d) => `${d.model} ${d.version}: ${d.reason}`).join('; ') : '');
    const conflicted = result.conflicts.length > 0;
    this.setCondition('Conflict', conflicted, conflicted ? 'LocalChangeNewer' : 'None', result.conflicts.map((c) => c.detail).join('; '));
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
      this.events?.reconnectNow();
    }
  }

  private setCondition(type: Condition['type'], status: boolean, reason: string, message: string): void {
    const old = this.conditions.get(type);
    const since = old && old.status === status ? old.since : new Date(this.clock.now()).toISOString();
    this.conditions.set(type, { type, status, reason, message, since });
  }

  /** Failed passes are retried with backoff, unless a human must fix something (then the next trigger retries). */
  private scheduleRetry(result: ReconcileResult): void {
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (result.status !== 'failed') {
      this.retryBackoff.reset();
      return;
    }
    if (this.stopping || result.errors.every((e) => e.retry === 'stalling')) return;
    const delay = this.retryBackoff.next();
    this.logger.warn({ retryInMs: delay, attempt: this.retryBackoff.attempts }, 'pass failed; keeping what is active and retrying');
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.fire('retry', `attempt ${this.retryBackoff.attempts + 1}`);
    }, delay);
  }

  private async loadRemembered(): Promise<void> {
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

  // ------------------------------------------------------------------ status

  stalenessSeconds(): number | null {
    return this.lastFetchAt === null ? null : Math.max(0, (this.clock.now() - this.lastFetchAt) / 1000);
  }

  /** Two schedule periods (at least five minutes): a pull missed once is normal, twice is not. */
  staleAfterSeconds(): number {
    const expr = this.cron?.schedule ?? this.config.schedule ?? DEFAULT_SCHEDULE;
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
    if (c('Stale')) return 'Stale';
    if (this.last.result.status === 'failed') return 'Failed';
    // Switched but not judged (a health check cut short): still on its way, never Ready.
    if (this.owed.length > 0) return 'Progressing';
    if (c('Conflict')) return 'Conflict';
    return 'Ready';
  }

  status(): AgentStatus {
    const staleness = this.stalenessSeconds();
    if (this.conditions.has('Stale') && this.last) {
      // Staleness grows between passes: re-evaluate on read.
      const was = this.conditions.get('Stale')!;
      const stale = this.isStale(this.last.result, staleness);
      if (stale !== was.status) this.setCondition('Stale', stale, stale ? 'RegistryUnreachable' : 'Fresh', stale ? `registry last reached ${Math.round(staleness ?? 0)} s ago; serving what is active` : '');
    }
    if (this.config.hub) {
      const connected = this.events?.connected ?? false;
      this.setCondition('HubConnected', connected, connected ? 'Subscribed' : 'Disconnected', connected ? '' : (this.events?.lastError ?? 'not connected yet'));
    }
    const r = this.last?.result;
    return {
      site: this.site,
      agent: { version: AGENT_VERSION, pid: process.pid, startedAt: iso(this.startedAt)! },
      registry: /^https?:\/\//i.test(this.config.registry) ? redactUrl(this.config.registry) : this.config.registry,
      branch: this.config.branch,
      health: this.health(),
      conditions: [...this.conditions.values()],
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
      schedule: this.cron?.schedule ?? this.config.schedule ?? DEFAULT_SCHEDULE,
      nextScheduledAt: iso(this.cron?.nextRunAt),
      models: this.models,
      unmanaged: this.unmanaged,
      services: this.serviceReports,
      templates: this.templateOutcomes.map((o) => ({ src: o.src, dest: o.dest, status: o.status, ...(o.message ? { message: o.message } : {}) })),
      selfHeal: { restored: this.healer?.healed ?? 0, recent: [...(this.healer?.damage ?? [])], lastVerifyAt: iso(this.healer?.lastVerifyAt) },
      hub: this.config.hub
        ? { url: redactUrl(this.config.hub), connected: this.events?.connected ?? false, lastReportAt: iso(this.lastReportAt), lastReportError: this.lastReportError }
        : null,
      lastError: r?.errors[0] ? `${r.errors[0].code}: ${r.errors[0].message.split('\n')[0]}` : null,
    };
  }

  metricsText(): string {
    const m = this.metrics;
    m.stalenessSeconds = this.stalenessSeconds();
    m.hubConnected = this.events?.connected ?? false;
    m.healsTotal = this.healer?.healed ?? 0;
    m.coalescedTotal = this.queue.coalesced;
    return renderMetrics(this.site, m);
  }

  // ------------------------------------------------------------------ hub

  private startEvents(hub: string): void {
    const base = hub.replace(/\/+$/, '');
    const repo = hubRepoName(this.config.registry, base);
    const url = `${base}/api/v1/events${repo ? `?repo=${encodeURIComponent(repo)}` : ''}`;
    const branchRef = `refs/heads/${this.config.branch}`;
    this.events = new EventSubscriber({
      url,
      token: this.token,
      fetch: this.fetchImpl,
      clock: this.clock,
      logger: this.logger,
      random: this.random,
      backoffBaseMs: this.deps.eventsBackoffBaseMs,
      backoffMaxMs: this.deps.eventsBackoffMaxMs,
      onEvent: (e) => this.onHubEvent(e, repo, branchRef),
      onOpen: (reconnected) => {
        this.logger.info({ hub: redactUrl(base), repo }, reconnected ? 'hub event stream re-established' : 'subscribed to hub events');
        // Anything pushed while we were away: one pass catches up.
        if (reconnected) this.fire('event', 'hub reconnected');
      },
    });
    this.events.start();
  }

  private onHubEvent(e: ServerSentEvent, repo: string | undefined, branchRef: string): void {
    if (e.event === 'resync') {
      this.fire('event', 'resync');
      return;
    }
    if (e.event !== 'ref') return;
    let data: { repo?: unknown; ref?: unknown; after?: unknown };
    try {
      data = JSON.parse(e.data) as typeof data;
    } catch {
      return;
    }
    if (repo && data.repo !== repo) return;
    if (data.ref !== branchRef) return;
    // The new tip is only a hint (the pass still fetches the branch from Git); a deletion (zeros) is none.
    const after = typeof data.after === 'string' && /^[0-9a-f]{40}$/.test(data.after) && !/^0+$/.test(data.after) ? data.after : undefined;
    this.fire('event', `${String(data.repo)} ${branchRef} ${String(data.after ?? '').slice(0, 12)}`, after);
  }

  /** Send the status to the hub soon; reports never overlap and the latest always goes out. */
  private reportSoon(): void {
    if (!this.config.hub) return;
    if (this.reporting) {
      this.reportAgain = true;
      return;
    }
    this.reporting = (async () => {
      do {
        this.reportAgain = false;
        await this.sendReport();
      } while (this.reportAgain && !this.passAbort.signal.aborted);
    })().finally(() => {
      this.reporting = undefined;
    });
  }

  /** Wait for the report in flight (every pass starts one). */
  private async flushReport(): Promise<void> {
    await this.reporting;
  }

  private async sendReport(final = false): Promise<void> {
    const timeoutMs = final ? STOP_REPORT_TIMEOUT_MS : 10_000;
    const url = `${this.config.hub!.replace(/\/+$/, '')}/api/v1/sites/${encodeURIComponent(this.site)}/status`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    try {
      const res = await this.fetchImpl(url, { method: 'POST', headers, body: JSON.stringify(this.status()), signal: final ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([AbortSignal.timeout(timeoutMs), this.reportAbort.signal]) });
      const text = await res.text().catch(() => '');
      if (!res.ok) throw new Error(`hub answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`);
      if (this.lastReportError) {
        this.logger.info('status reports reach the hub again');
        this.events?.reconnectNow();
      }
      this.lastReportAt = this.clock.now();
      this.lastReportError = null;
    } catch (err) {
      const why = `POST ${redactUrl(url)}: ${requestErrorMessage(err)}`;
      if (this.lastReportError === null) this.logger.warn({ reason: why }, 'cannot report status to the hub; will report after the next pass');
      this.lastReportError = why;
    }
  }

  // ------------------------------------------------------------------ pins watch

  /**
   * `modelsync pin` / `unpin` is break-glass: a running agent applies it at
   * once (debounced), not at its next scheduled pass. Only pins.json in the
   * store's root is watched; a rewrite with the same content starts nothing.
   */
  private async watchPins(): Promise<void> {
    const layout = new StoreLayout(this.config.store);
    const file = layout.pinsFile;
    // The same watch covers the nudge a `modelsync reconcile` (--force, say) leaves after switching
    // versions under a running agent: its services are restarted and checked now, not at the next trigger.
    const nudge = layout.nudgeFile;
    const read = (f: string): Promise<string> => fsp.readFile(f, 'utf8').catch(() => '');
    let seen = await read(file);
    let nudged = await read(nudge);
    await fsp.mkdir(layout.root, { recursive: true });
    const w = watch(layout.root, { ignoreInitial: true, depth: 0, followSymlinks: false, ignored: (p: string) => p !== layout.root && p !== file && p !== nudge });
    this.pinsWatch = w;
    const onChange = (): void => {
      this.clock.clearTimeout(this.pinsTimer);
      this.pinsTimer = this.clock.setTimeout(() => {
        void Promise.all([read(file), read(nudge)]).then(([text, note]) => {
          if (this.stopping) return;
          if (text !== seen) {
            seen = text;
            nudged = note;
            this.logger.info({ pins: file }, 'local pins changed: running a pass');
            this.fire('pin', 'pins.json changed');
          } else if (note !== nudged && note !== '') {
            nudged = note;
            this.logger.info({ by: note.trim() }, 'versions were switched outside the agent: running a pass');
            this.fire('manual', 'modelsync reconcile switched versions on this store');
          }
        });
      }, this.deps.watchDebounceMs ?? 250);
    };
    w.on('add', onChange).on('change', onChange).on('unlink', onChange);
    w.on('error', (err) => this.logger.warn({ err: errorMessage(err) }, 'pins watch error'));
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
  }

  // ------------------------------------------------------------------ local registry watch

  private async watchLocalRegistry(registry: string): Promise<void> {
    let gitdir: string;
    try {
      gitdir = (await findGitDir(registry)).gitdir;
    } catch (err) {
      this.logger.warn({ registry, err: errorMessage(err) }, 'cannot watch the local registry; relying on the schedule');
      return;
    }
    const heads = `refs${sep}heads`;
    // Only ref updates matter: a pass reads the branch's commit, never the working tree.
    const ignored = (p: string): boolean => {
      const rel = relative(gitdir, p);
      return !(rel === '' || rel === 'packed-refs' || rel === 'refs' || rel === heads || rel.startsWith(`${heads}${sep}`));
    };
    await fsp.mkdir(`${gitdir}/refs/heads`, { recursive: true }).catch(() => {});
    const w = watch(gitdir, { ignoreInitial: true, ignored, followSymlinks: false });
    this.registryWatch = w;
    const onChange = (p: string): void => {
      if (p.endsWith('.lock')) return;
      this.clock.clearTimeout(this.watchTimer);
      this.watchTimer = this.clock.setTimeout(() => this.fire('watch', 'registry refs changed'), this.deps.watchDebounceMs ?? 250);
    };
    w.on('add', onChange).on('change', onChange).on('unlink', onChange);
    w.on('error', (err) => this.logger.warn({ err: errorMessage(err) }, 'registry watch error'));
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
  }
}

/**
 * What the site runs against what the commit declares, in one line: "applied
 * X" only when it runs all of it; otherwise "attempted X; running previous Y
 * for M (degraded)", so a rolled-back version never reads as applied.
 */
export function readyMessage(result: Pick<ReconcileResult, 'commit' | 'models' | 'degraded' | 'conflicts'>): string {
  if (!result.commit) return '';
  const commit = result.commit.slice(0, 12);
  const notes: string[] = [];
  for (const d of result.degraded) {
    const active = result.models.find((m) => m.model === d.model)?.active;
    notes.push(active && active !== d.version
      ? `running previous ${active} for ${d.model} (degraded: ${d.version} failed its health check)`
      : `running ${d.version} for ${d.model} although it failed its health check (degraded; nothing to go back to)`);
  }
  for (const c of result.conflicts) notes.push(`left ${c.model} at ${c.active ?? '-'}, newer than the declared ${c.declared} (conflict)`);
  return notes.length === 0 ? `applied ${commit}` : `attempted ${commit}; ${notes.join('; ')}`;
}

/**
 * What happened to the versions that failed their health check: rolled back
 * to the previous one, or (a first install) left active because there is no
 * previous version to go back to.
 */
export function degradedWords(result: Pick<ReconcileResult, 'degraded' | 'models'>): string {
  const back: string[] = [];
  const stays: string[] = [];
  for (const d of result.degraded) {
    const active = result.models.find((m) => m.model === d.model)?.active;
    if (active === d.version) stays.push(`${d.model} ${d.version}`);
    else back.push(`${d.model} ${d.version}${active ? ` (back to ${active})` : ''}`);
  }
  const parts: string[] = [];
  if (back.length) parts.push(`${back.join(', ')} failed ${back.length > 1 ? 'their health checks and were' : 'its health check and was'} rolled back`);
  if (stays.length) parts.push(`${stays.join(', ')} failed ${stays.length > 1 ? 'their health checks' : 'its health check'} with no previous version to roll back to; ${stays.length > 1 ? 'they stay' : 'it stays'} active`);
  return parts.join('; ');
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** The hub's name for the registry repo, when the registry lives on that hub (`<hub>/<repo>.git`). */
export function hubRepoName(registry: string, hub: string): string | undefined {
  try {
    const r = new URL(registry);
    const h = new URL(hub);
    if (r.origin !== h.origin) return undefined;
    const prefix = h.pathname.replace(/\/+$/, '');
    const path = r.pathname.startsWith(`${prefix}/`) ? r.pathname.slice(prefix.length + 1) : undefined;
    const m = path ? /^([^/]+?)(?:\.git)?\/?$/.exec(path) : null;
    return m?.[1];
  } catch {
    return undefined;
  }
}

function failedResult(cfg: AgentConfig, err: unknown, startedAt: number): ReconcileResult {
  const e = passError(err);
  return {
    status: 'failed',
    exitCode: 1,
    dryRun: false,
    site: cfg.site,
    registry: /^https?:\/\//i.test(cfg.registry) ? redactUrl(cfg.registry) : cfg.registry,
    models: [],
    changed: [],
    rolledBack: [],
    conflicts: [],
    degraded: [],
    unmanaged: [],
    bytesFetched: 0,
    bytesPlanned: 0,
    durationMs: 0,
    stepMs: {},
    errors: [e],
    warnings: [],
    startedAt: new Date(startedAt).toISOString(),
  };
}
