/**
 * The rollout controller: per rollout, observe the sites' reports → decide
 * (decide.ts, pure) → commit the step (steps.ts), one commit per step, so
 * the registry's history is the audit trail and `git revert` undoes a step.
 * Clock, status source and repository are passed in.
 */
import { GitError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { RolloutView } from '../fleet/rollout.ts';
import { rolloutViews } from '../fleet/rollouts.ts';
import { modelPopulation } from '../registry/desired.ts';
import { MODEL_REGISTRY_FILE } from '../registry/layout.ts';
import { decide, type Decision } from './decide.ts';
import { gateVerdict, type GateSample } from '../gate/metric-gate.ts';
import { queryMetric, ruleOf } from '../gate/query.ts';
import { durationMs } from '../util/duration.ts';
import type { RolloutFile } from '../registry/schema.ts';
import { observeReports, type StatusSource } from './observe.ts';
import type { RolloutRepo } from './repo.ts';
import { advanceStep, finishStep, haltStep, type Step } from './steps.ts';

export interface ControllerDeps {
  repo: RolloutRepo;
  status: StatusSource;
  now: () => Date;
  logger: Logger;
  /** Held around each commit (the hub's per-repo lock, so a push and a step never interleave). */
  withLock?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** After a step is committed (the hub emits its ref-changed event here). */
  onCommitted?: (commit: string, before: string) => Promise<void> | void;
  /**
   * False for a one-shot run (cron, CI): nothing remembers when sites were
   * first seen Ready, so the soak counts from the wave's `state.since`.
   */
  remembers?: boolean;
  /** For waves with their own `gate: {metric}` (default: the global fetch). */
  fetch?: typeof fetch;
}

export interface TickOutcome {
  model: string;
  version: string;
  decision: Decision;
  /** The step's commit, when one was made. */
  commit?: string;
  error?: string;
}

export class RolloutController {
  /** Per `model@version`: when each site was first seen Ready on it (soak counts from there). */
  private readonly ready = new Map<string, Map<string, number>>();
  /** Per `model@version#wave`: the answers of that wave's own gate so far. */
  private readonly gates = new Map<string, GateSample[]>();
  /** The rollouts as the last tick left them (after its steps), for people. */
  views: RolloutView[] = [];

  constructor(private readonly deps: ControllerDeps) {}

  /** One round over every rollout in progress; at most one step per rollout. */
  async tick(): Promise<TickOutcome[]> {
    const { repo, logger } = this.deps;
    let head = await repo.head();
    if (!head) return [];
    if (head.problems.length) {
      logger.warn({ repo: repo.name, commit: head.commit, problems: head.problems.length }, 'registry head is invalid; rollouts wait until it is fixed');
      return [];
    }
    const models = [...head.registry.rollouts.keys()].sort();
    if (models.length === 0) {
      this.ready.clear();
      this.gates.clear();
      this.views = [];
      return [];
    }
    const reports = await observeReports(this.deps.status);
    const out: TickOutcome[] = [];
    for (const model of models) {
      const doc = head.registry.rollouts.get(model);
      if (!doc) continue;
      const r = doc.data;
      const key = `${model}@${r.version}`;
      const now = this.deps.now();
      const gate = await this.waveGate(key, r, now.getTime());
      const { decision, readySince } = decide({
        rollout: r, population: modelPopulation(head.registry, model), reports, readySince: this.ready.get(key) ?? new Map(), now: now.getTime(),
        ...(this.deps.remembers === false ? { firstSeen: Date.parse(r.state.since) } : {}),
        ...(gate ? { gate } : {}),
      });
      this.ready.set(key, readySince);
      const outcome: TickOutcome = { model, version: r.version, decision };
      out.push(outcome);
      if (decision.kind === 'wait') {
        logger.debug({ model, version: r.version, why: decision.why }, 'rollout waits');
        continue;
      }
      const text = (await head.source.readText(doc.file)) ?? '';
      let step: Step;
      if (decision.kind === 'advance') step = advanceStep(r, text, decision.to, decision.why, now);
      else if (decision.kind === 'halt') step = haltStep(r, text, decision.why, now);
      else step = finishStep(r, (await head.source.readText(MODEL_REGISTRY_FILE)) ?? '', decision.why);
      try {
        outcome.commit = await this.commit(step, head.commit);
        logger.info({ model, version: r.version, step: decision.kind, commit: outcome.commit, why: decision.why }, step.message.split('\n')[0]!);
        if (decision.kind !== 'advance') this.ready.delete(key);
      } catch (err) {
        outcome.error = errorMessage(err);
        // Someone pushed meanwhile: decide again on the new head next tick.
        logger[err instanceof GitError ? 'info' : 'warn']({ model, err: outcome.error }, 'rollout step not committed');
      }
      const next = await repo.head();
      if (!next) break;
      head = next;
    }
    this.views = rolloutViews(head.registry);
    return out;
  }

  /**
   * The current wave's own gate, asked at most once per `every` (a tick may
   * come sooner), watched from the wave's `state.since`, judged by the
   * function sites soak by. A one-shot run keeps no answers between runs:
   * it asks once and judges that answer over the window (never a pass from
   * fewer answers than the window needs: it waits instead).
   */
  private async waveGate(key: string, r: RolloutFile, now: number): Promise<ReturnType<typeof gateVerdict> | undefined> {
    const wave = r.waves.find((w) => w.name === r.state.wave);
    const g = wave?.gate?.metric;
    if (!wave || !g || r.state.status !== 'progressing') return undefined;
    const gk = `${key}#${wave.name}`;
    for (const k of this.gates.keys()) if (k.startsWith(`${key}#`) && k !== gk) this.gates.delete(k);
    const samples = this.gates.get(gk) ?? [];
    this.gates.set(gk, samples);
    const since = Date.parse(r.state.since);
    const last = samples[samples.length - 1];
    if (!last || now - last.at >= durationMs(g.every)) {
      samples.push(await queryMetric(this.deps.fetch ?? fetch, g, { now: () => now }));
      if (!samples[samples.length - 1]!.ok) this.deps.logger.warn({ model: r.model, wave: wave.name, reason: (samples[samples.length - 1] as { error: string }).error }, 'wave gate cannot be read; the wave waits');
    }
    return gateVerdict(ruleOf(g), samples, Number.isFinite(since) ? since : now, now);
  }

  private async commit(step: Step, base: string): Promise<string> {
    const run = async (): Promise<string> => {
      const commit = await this.deps.repo.apply(step, base);
      await this.deps.onCommitted?.(commit, base);
      return commit;
    };
    return this.deps.withLock ? this.deps.withLock(run) : run();
  }
}

/** Run ticks every `intervalMs` until stopped; a failing tick is logged, never fatal. */
export function runController(c: RolloutController, intervalMs: number, logger: Logger): { stop(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  const loop = (): void => {
    if (stopped) return;
    running = c.tick().catch((err) => logger.warn({ err: errorMessage(err) }, 'rollout controller tick failed')).finally(() => {
      if (!stopped) timer = setTimeout(loop, intervalMs);
    });
  };
  timer = setTimeout(loop, 0);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
