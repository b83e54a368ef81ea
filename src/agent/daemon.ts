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
 * The rooms: pass-runner.ts runs a pass (hooks, templates), site-status.ts
 * turns outcomes into conditions and the /status document, hub-link.ts talks
 * to the hub (events in, reports out), watches.ts holds the file watches,
 * selfheal.ts the self-heal. This file wires them and owns the triggers.
 *
 * Everything from outside (clock, fetch, randomness, the reconcile itself) is
 * passed in, so tests drive the schedule with a controlled clock and talk to
 * real servers on loopback.
 */
import { errorMessage } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { reconcile as defaultReconcile } from '../reconcile/index.ts';
import { splitCredentials } from '../reconcile/registry-access.ts';
import type { ReconcileResult } from '../reconcile/index.ts';
import { loadPolicy } from '../trust/index.ts';
import { iso, type AgentDeps, type AgentStatus, type Health, type PassOutcome } from './agent-types.ts';
import { Backoff, systemClock, type Clock, type TimerHandle } from './clock.ts';
import { parseListen, readSecretFile, readToken, stripHubCredentials, type AgentConfig } from './config.ts';
import { HubLink, type ReportResult } from './hub-link.ts';
import { emptyMetrics, renderMetrics, type AgentMetrics } from './metrics.ts';
import { PassRunner } from './pass-runner.ts';
import { PassQueue, QueueClosedError, type Trigger, type TriggerSource } from './queue.ts';
import { DEFAULT_SCHEDULE, CronTrigger } from './schedule.ts';
import { SelfHealer } from './selfheal.ts';
import { SoakWatcher } from './soak.ts';
import { startAgentServer, type AgentServer } from './server.ts';
import { SiteStatus, serviceModelProblems } from './site-status.ts';
import { StoreLayout, readLink, readState } from '../store/index.ts';
import { defaultEngine } from './templates.ts';
import { watchLocalRegistry, watchPins, type Watch, type WatchOptions } from './watches.ts';

// The public API stays importable from here.
export { AGENT_VERSION, type AgentDeps, type AgentStatus, type Condition, type Health, type PassOutcome } from './agent-types.ts';
export { readyMessage, degradedWords } from './pass-words.ts';
export { hubRepoName } from './hub-link.ts';

export class Agent {
  readonly site: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private readonly random: () => number;
  private readonly queue: PassQueue<PassOutcome>;
  private readonly retryBackoff: Backoff;
  private readonly passAbort = new AbortController();
  private readonly deps: AgentDeps;
  private readonly view: SiteStatus;
  private readonly runner: PassRunner;
  private readonly metrics: AgentMetrics = emptyMetrics();
  private readonly soak: SoakWatcher;
  private token: string | undefined;
  private webhookSecret: string | undefined;

  private cron: CronTrigger | undefined;
  private hub: HubLink | undefined;
  private server: AgentServer | undefined;
  private healer: SelfHealer | undefined;
  private registryWatch: Watch | undefined;
  private pinsWatch: Watch | undefined;
  private retryTimer: TimerHandle | undefined;
  /** A pass when the maintenance window opens, for switches held outside it. */
  private windowTimer: TimerHandle | undefined;
  private started = false;
  private stopping = false;
  /** `agent --once`: a failed gate is rolled back by the pass once() runs, not by one of its own. */
  private oneShot = false;

  private constructor(readonly config: AgentConfig, deps: AgentDeps) {
    this.site = config.site;
    this.clock = deps.clock ?? systemClock;
    this.logger = deps.logger ?? silentLogger;
    this.env = deps.env ?? process.env;
    this.random = deps.random ?? Math.random;
    this.deps = deps;
    this.retryBackoff = new Backoff(deps.retryBaseMs ?? 2000, deps.retryMaxMs ?? 300_000, this.random);
    this.queue = new PassQueue((triggers) => this.runPass(triggers));
    this.soak = new SoakWatcher({
      store: config.store, fetch: deps.fetch ?? fetch, clock: this.clock, logger: this.logger,
      onChange: () => this.reportSoon(),
      onFailed: (what) => {
        if (!this.oneShot) this.fire('soak', what);
      },
    });
    this.runner = new PassRunner({
      config,
      fetch: deps.fetch ?? fetch,
      clock: this.clock,
      logger: this.logger,
      env: this.env,
      engine: deps.templateEngine ?? defaultEngine,
      reconcile: deps.reconcile ?? defaultReconcile,
      signal: this.passAbort.signal,
      token: () => this.token,
      onSwitch: (switched) => {
        this.view.beginJudging(switched);
        this.reportSoon();
      },
      lateVerdicts: () => this.soak.lateVerdicts(),
    });
    this.view = new SiteStatus(config, this.clock, this.logger, {
      schedule: () => this.schedule(),
      nextScheduledAt: () => this.cron?.nextRunAt,
      templates: () => this.runner.templates(),
      selfHeal: () => ({ restored: this.healer?.healed ?? 0, recent: [...(this.healer?.damage ?? [])], lastVerifyAt: iso(this.healer?.lastVerifyAt) }),
      hub: () => this.hub && { connected: this.hub.connected, eventsError: this.hub.eventsError, lastReportAt: this.hub.lastReportAt, lastReportError: this.hub.lastReportError },
      onRegistryBack: () => this.hub?.reconnectNow(),
      soaks: () => this.soak.views(),
    });
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
    // An unreadable or empty trust file stops the agent at start, not at its first pass.
    if (config.verify) await loadPolicy(config.verify);
    if (config.hub) {
      agent.hub = new HubLink({
        hub: config.hub,
        registry: config.registry,
        branch: config.branch,
        site: config.site,
        token: agent.token,
        fetch: deps.fetch ?? fetch,
        clock: agent.clock,
        logger: agent.logger,
        random: agent.random,
        eventsBackoffBaseMs: deps.eventsBackoffBaseMs,
        eventsBackoffMaxMs: deps.eventsBackoffMaxMs,
        fire: (source, detail, commit) => agent.fire(source, detail, commit),
        status: () => agent.status(),
        stopSignal: agent.passAbort.signal,
      });
    }
    await agent.view.loadRemembered();
    const layout = new StoreLayout(config.store);
    await agent.soak.resume((model) => readLink(layout, model, 'current').catch(() => undefined), (service) => config.services.find((s) => s.name === service)?.health?.metric);
    return agent;
  }

  /** Where the agent's HTTP server listens (once started with `listen`). */
  get url(): string | undefined {
    return this.server?.url;
  }

  /** How the last report to the hub went (undefined: no hub, or none sent yet). */
  get lastReport(): ReportResult | undefined {
    return this.hub?.lastReport;
  }

  get passes(): number {
    return this.queue.passes;
  }

  /** One pass with services and health checks, a report to the hub, then done (`agent --once`). */
  async once(): Promise<PassOutcome> {
    if (this.hub) this.hub.oneShot = true;
    this.oneShot = true;
    let outcome = await this.queue.request({ source: 'manual', detail: '--once', at: this.clock.now() });
    // One pass judges what it can; a metric gate is judged over its `for`: wait for it, then roll back if it failed.
    if (this.soak.active) {
      await this.hub?.flush();
      await this.soak.whenWatched();
      if (this.soak.lateVerdicts().length > 0) outcome = await this.queue.request({ source: 'soak', detail: 'metric gate failed', at: this.clock.now() });
    }
    await this.soak.stop();
    await this.hub?.flush();
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
    this.pinsWatch = await watchPins(cfg.store, this.watchOptions());

    this.cron = new CronTrigger({
      expression: cfg.schedule ?? DEFAULT_SCHEDULE,
      jitterMs: cfg.jitter_s * 1000,
      clock: this.clock,
      random: this.random,
      onFire: (slot) => this.fire('schedule', new Date(slot).toISOString()),
    });
    this.cron.start();

    this.hub?.startEvents();
    if (!/^https?:\/\//i.test(cfg.registry)) this.registryWatch = await watchLocalRegistry(cfg.registry, this.watchOptions());

    // At start, against what the last validated pass resolved (the first pass checks again).
    const snap = await readState(new StoreLayout(cfg.store)).then(({ state }) => state.snapshot, () => undefined);
    if (snap) this.checkServiceModels(new Set(snap.desired.map((d) => String(d.model))), 'start');

    this.fire('start');
  }

  /** A service naming a model the site does not run is outside the health gate: say so, loudly, every time. */
  private checkServiceModels(siteModels: ReadonlySet<string>, when: 'start' | 'pass'): void {
    this.view.serviceProblems = serviceModelProblems(this.config, siteModels);
    for (const p of this.view.serviceProblems) this.logger.warn({ service: p.service, model: p.model, at: when }, p.message);
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
    this.view.phase = 'stopping';
    this.cron?.stop();
    this.hub?.stopEvents();
    this.clock.clearTimeout(this.retryTimer);
    this.clock.clearTimeout(this.windowTimer);
    await this.registryWatch?.close();
    await this.pinsWatch?.close();
    await this.healer?.stop();
    await this.soak.stop();
    // Downloads in progress stop (they resume next time); switches and restarts finish.
    this.passAbort.abort(new Error('the agent is stopping'));
    await this.queue.close();
    // A report still in flight is superseded by the last one below: don't wait out its 10 s.
    await this.hub?.supersede();
    // Always a last report, even when stopped while idle: the hub must not keep showing "reconciling".
    // Bounded: a hub that does not answer must not hold up a systemd stop.
    this.view.phase = 'stopped';
    await this.hub?.send(true);
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
    this.view.phase = 'reconciling';
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const startedAt = this.clock.now();
    const { result, info, reports, soaks } = await this.runner.run(triggers, startedAt);
    if (reports.length > 0) this.view.serviceReports = reports.slice(-20);
    this.soak.afterPass(result, this.stopping ? [] : soaks);
    await this.view.reloadOwed();
    const outcome: PassOutcome = { result, triggers, startedAt, finishedAt: this.clock.now() };
    // Before afterPass: the report it sends says what the agent does now, not "reconciling".
    this.view.phase = this.stopping ? 'stopping' : 'idle';
    this.afterPass(outcome, info?.site.schedule);
    try {
      this.deps.onPass?.(outcome);
    } catch (err) {
      this.logger.warn({ err: errorMessage(err) }, 'onPass listener failed');
    }
    return outcome;
  }

  /** The one place a finished pass becomes status, metrics, the next schedule and retry, and a report. */
  private afterPass(outcome: PassOutcome, siteSchedule: string | undefined): void {
    const { result } = outcome;
    // The site file's schedule applies unless agent.yaml sets one (before the conditions: staleness counts periods of it).
    if (siteSchedule && !this.config.schedule && this.cron) {
      try {
        this.cron.setExpression(siteSchedule);
      } catch (err) {
        this.logger.warn({ schedule: siteSchedule, err: errorMessage(err) }, 'site schedule unusable; keeping the current one');
      }
    }
    this.view.record(outcome);
    // The plan ran: its models are the ones this site runs.
    if (result.stepMs.plan !== undefined) this.checkServiceModels(new Set(result.models.map((x) => x.model)), 'pass');

    const m = this.metrics;
    m.lastPassDurationSeconds = result.durationMs / 1000;
    m.passesTotal[result.status === 'failed' ? 'error' : result.status === 'degraded' ? 'degraded' : result.status === 'conflict' ? 'conflict' : 'ok']++;
    m.bytesFetchedTotal += result.bytesFetched;
    m.throttledTotal += result.throttled ?? 0;
    m.coalescedTotal = this.queue.coalesced;
    m.conflicts = result.conflicts.length;
    m.degraded = result.degraded.length > 0;
    m.untrusted = this.config.verify ? result.errors.some((e) => e.code === 'UntrustedCommit') : null;
    m.healsTotal = this.healer?.healed ?? 0;
    if (this.view.lastSuccessAt !== null) m.lastSuccessTimestamp = this.view.lastSuccessAt / 1000;
    if (this.view.lastFetchAt !== null) m.lastFetchTimestamp = this.view.lastFetchAt / 1000;
    m.models = this.view.models.map((x) => ({ model: x.model, declared: x.declared, active: x.active ?? undefined, inSync: x.active === x.desired && !x.verdictOwed }));

    this.scheduleRetry(result);
    this.clock.clearTimeout(this.windowTimer);
    this.windowTimer = result.waitUntil && !this.stopping ? this.clock.setTimeout(() => this.fire('schedule', 'maintenance window opens'), Math.max(0, Date.parse(result.waitUntil) - this.clock.now())) : undefined;
    this.reportSoon();
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

  // ------------------------------------------------------------------ status

  /** The cron expression in force: agent.yaml's, else the site file's, else the default. */
  private schedule(): string {
    return this.cron?.schedule ?? this.config.schedule ?? DEFAULT_SCHEDULE;
  }

  stalenessSeconds(): number | null {
    return this.view.stalenessSeconds();
  }

  staleAfterSeconds(): number {
    return this.view.staleAfterSeconds();
  }

  health(): Health {
    return this.view.health();
  }

  status(): AgentStatus {
    return this.view.document();
  }

  metricsText(): string {
    const m = this.metrics;
    m.stalenessSeconds = this.stalenessSeconds();
    m.hubConnected = this.hub?.connected ?? false;
    m.healsTotal = this.healer?.healed ?? 0;
    m.coalescedTotal = this.queue.coalesced;
    // A model a metric gate still watches is switched, not yet in sync.
    const soaking = this.soak.models();
    return renderMetrics(this.site, { ...m, models: m.models.map((x) => ({ ...x, inSync: x.inSync && !soaking.has(x.model) })) });
  }

  private reportSoon(): void {
    this.hub?.reportSoon();
  }

  private watchOptions(): WatchOptions {
    return { clock: this.clock, logger: this.logger, debounceMs: this.deps.watchDebounceMs, stopping: () => this.stopping, fire: (s, d) => this.fire(s, d) };
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
