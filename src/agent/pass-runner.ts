/**
 * One agent pass: the same `reconcile()` the CLI runs, with hooks built from
 * agent.yaml (templates, restarts, health checks). Templates are rendered
 * here, under the pass's lock.
 */
import type { Logger } from '../log.ts';
import type { ReconcileOptions, ReconcileResult } from '../reconcile/index.ts';
import type { ActivatedModel, LateVerdict, PassInfo } from '../reconcile/hooks.ts';
import { StoreLayout, readLink } from '../store/index.ts';
import { templateContext } from '../templates/index.ts';
import { durationMs } from '../util/duration.ts';
import type { AgentStatus } from './agent-types.ts';
import type { Clock } from './clock.ts';
import type { AgentConfig } from './config.ts';
import { buildActivationHooks, type ServiceReport } from './hooks.ts';
import { failedResult } from './pass-words.ts';
import type { Trigger } from './queue.ts';
import { renderTemplates, type RenderOutcome, type TemplateEngine } from './templates.ts';
import { guardedPaths, type GuardedPath } from './guarded-paths.ts';
import { ServingViews } from './serving.ts';
import type { SoakStart } from './soak.ts';

export interface PassRunnerOptions {
  config: AgentConfig;
  fetch: typeof fetch;
  clock: Clock;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  engine: TemplateEngine;
  reconcile: (opts: ReconcileOptions) => Promise<ReconcileResult>;
  /** Stops downloads and health checks when the agent stops. */
  signal: AbortSignal;
  token(): string | undefined;
  /** Versions were switched; their services restart and are judged next. */
  onSwitch(switched: string[]): void;
  /** Metric gates that failed since their switch: this pass rolls them back (soak.ts). */
  lateVerdicts(): LateVerdict[];
}

export interface PassRun {
  result: ReconcileResult;
  info: PassInfo | undefined;
  /** Service reports of this pass (empty: none ran). */
  reports: ServiceReport[];
  /** Switches this pass found healthy whose metric gates are watched next. */
  soaks: SoakStart[];
}

export class PassRunner {
  private templateOutcomes: RenderOutcome[] = [];
  private templatesWarned = false;

  constructor(private readonly o: PassRunnerOptions) {}

  /** The latest outcome per template destination, for /status. */
  templates(): AgentStatus['templates'] {
    return this.templateOutcomes.map((o) => ({ src: o.src, dest: o.dest, status: o.status, ...(o.message ? { message: o.message } : {}) }));
  }

  async run(triggers: readonly Trigger[], startedAt: number): Promise<PassRun> {
    const { config } = this.o;
    const timeoutMs = durationMs(config.pass_timeout);
    // Health checks stop at the pass's deadline too (the pass keeps its own for its steps). A timer of
    // our own, cleared below: an AbortSignal.timeout() only AbortSignal.any() refers to may be collected unfired.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DOMException('pass_timeout reached', 'TimeoutError')), timeoutMs);
    const hookSignal = AbortSignal.any([this.o.signal, deadline.signal]);
    let info: PassInfo | undefined;
    const hooks = buildActivationHooks({
      services: config.services,
      fetch: this.o.fetch,
      clock: this.o.clock,
      logger: this.o.logger,
      env: this.o.env,
      signal: hookSignal,
      renderTemplates: async (models: readonly ActivatedModel[]) => this.renderTemplates(info, new Set(models.map((m) => m.model))),
      ...(config.serving.length ? { serving: async (models: readonly ActivatedModel[], phase: 'switch' | 'rollback') => this.servingViews(hookSignal).apply(models, phase) } : {}),
    });
    hooks.lateVerdicts = () => this.o.lateVerdicts();
    hooks.onRegistry = (i) => {
      info = i;
    };
    // From the switch until the verdict, the site is Progressing, not Ready: tell /status and the hub at once.
    const afterSwitch = hooks.afterSwitch.bind(hooks);
    hooks.afterSwitch = async (changed) => {
      this.o.onSwitch(changed.map((c) => `${c.model} ${c.from ?? '-'} → ${c.version}`));
      return afterSwitch(changed);
    };
    // Templates whose inputs changed without a switch (template text, site labels, a deleted output), under the lock.
    hooks.settle = async () => ({
      warnings: [
        ...(await this.renderTemplates(info, new Set())).map((f) => f.message),
        ...(config.serving.length ? await this.servingViews(hookSignal).settle() : []),
      ],
    });
    let result: ReconcileResult;
    const expectedCommit = [...triggers].reverse().find((t) => t.commit)?.commit;
    try {
      result = await this.o.reconcile({
        site: config.site,
        registry: config.registry,
        branch: config.branch,
        store: config.store,
        token: this.o.token(),
        expectedCommit,
        hooks,
        concurrency: config.concurrency,
        // The agent's clock decides maintenance windows too (tests drive it).
        now: () => new Date(this.o.clock.now()),
        logger: this.o.logger,
        // One deadline for the steps and the health checks.
        signal: hookSignal,
        ...(config.verify ? { verify: config.verify } : {}),
        timeoutMs,
      });
    } catch (err) {
      result = failedResult(config, err, startedAt);
    } finally {
      clearTimeout(timer);
    }
    return { result, info, reports: hooks.reports, soaks: hooks.soaks };
  }

  private servingViews(signal: AbortSignal): ServingViews {
    const { config } = this.o;
    return new ServingViews({ views: config.serving, store: config.store, fetch: this.o.fetch, clock: this.o.clock, logger: this.o.logger, signal });
  }

  /** Render the site's templates; returns failures (their services count as unhealthy after a switch). */
  private async renderTemplates(info: PassInfo | undefined, changed: ReadonlySet<string>): Promise<Array<{ models: string[]; message: string }>> {
    const { config, logger } = this.o;
    if (!info || !config.templates || info.site.templates.length === 0) return [];
    if (!config.config_dir) {
      if (!this.templatesWarned) logger.warn({ templates: info.site.templates.length }, 'the site declares templates but agent.yaml sets no config_dir; they are not rendered');
      this.templatesWarned = true;
      return [];
    }
    const layout = new StoreLayout(config.store);
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
        configDir: config.config_dir,
        changedModels: changed,
        protectedPaths: this.ownFiles(),
      },
      this.o.engine,
    );
    for (const o of outcomes) {
      if (o.status === 'written') logger.info({ src: o.src, dest: o.dest }, 'template rendered');
      if (o.status === 'error') logger.error({ src: o.src, dest: o.dest, reason: o.message }, 'template not rendered; the previous file stays');
    }
    // Remember the latest outcome per destination.
    const byDest = new Map(this.templateOutcomes.map((o) => [o.dest, o]));
    for (const o of outcomes) if (o.status !== 'skipped' || !byDest.has(o.dest)) byDest.set(o.dest, o);
    this.templateOutcomes = [...byDest.values()];
    return outcomes.filter((o) => o.status === 'error').map((o) => ({ models: o.models, message: o.message ?? 'template failed' }));
  }

  /** Files that decide what this site executes or who it is, and what its service commands run: no template may write them. */
  private ownFiles(): GuardedPath[] {
    return guardedPaths(this.o.config);
  }
}
