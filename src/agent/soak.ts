/**
 * Soaks: after a switch, a service whose health check is a metric gate is
 * watched for the gate's `for`, every `every`, outside the pass (the store
 * lock is not held, so passes, events and serving go on meanwhile). The
 * verdict is src/gate's. A failed gate is handed to the next pass as a late
 * verdict (reconcile/hooks.ts), which switches back through the same path as
 * a failed health check: Degraded, rollback, services restarted.
 *
 * A new switch of a soaking model supersedes its soak (the version watched
 * is gone). Soaks are kept in `<store>/soak.json`, so an agent restarted
 * mid-soak watches again, for a whole `for` from its start (the samples
 * before the restart are not kept): conservative, never a silent pass.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../errors.ts';
import { gateVerdict, type GateSample, type GateVerdict } from '../gate/metric-gate.ts';
import { ruleOf } from '../gate/query.ts';
import type { Logger } from '../log.ts';
import type { LateVerdict } from '../reconcile/hooks.ts';
import type { ReconcileResult } from '../reconcile/index.ts';
import type { MetricGateSpec } from '../registry/schema.ts';
import { durationMs } from '../util/duration.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { queryMetric } from './health-metric.ts';

/** A model switched in the pass whose soak this is. */
export interface SoakModel {
  model: string;
  version: string;
  from?: string;
  previousBefore?: string;
}

export interface SoakStart {
  service: string;
  models: SoakModel[];
  gate: MetricGateSpec;
  /** Set once the gate failed: the next pass rolls back (kept across a restart of the agent). */
  failed?: string;
}

/** What /status and the hub see of a soak. */
export interface SoakView {
  service: string;
  models: SoakModel[];
  since: string;
  until: string;
  state: 'watching' | 'failed';
  reason: string;
  overdue: boolean;
  last?: number;
}

interface Soak extends SoakStart {
  since: number;
  samples: GateSample[];
  verdict: GateVerdict;
  failed?: string;
  timer?: TimerHandle;
  /** The last query failed (logged once per outage, not every query). */
  missing?: boolean;
}

export interface SoakOptions {
  store: string;
  fetch: typeof fetch;
  clock: Clock;
  logger: Logger;
  /** A soak started, ended or changed its verdict: refresh /status and the hub. */
  onChange(): void;
  /** A gate failed: run a pass, which rolls the switch back. */
  onFailed(what: string): void;
}

const MAX_SAMPLES = 10_000;

export class SoakWatcher {
  private soaks: Soak[] = [];
  private stopped = false;
  private readonly abort = new AbortController();
  private readonly file: string;
  private waiters: Array<() => void> = [];
  private saving: Promise<void> = Promise.resolve();

  constructor(private readonly o: SoakOptions) {
    this.file = join(o.store, 'soak.json');
  }

  /**
   * Soaks a previous run of the agent left: watched again from now, with the
   * gate agent.yaml gives the service today (a service without one any more
   * is not watched). Only models still active on the version soaked are.
   */
  async resume(active: (model: string) => Promise<string | undefined>, gateOf: (service: string) => MetricGateSpec | undefined): Promise<void> {
    let saved: SoakStart[] = [];
    try {
      const parsed = JSON.parse(await fsp.readFile(this.file, 'utf8')) as { soaks?: SoakStart[] };
      saved = Array.isArray(parsed.soaks) ? parsed.soaks : [];
    } catch {
      return;
    }
    const still: SoakStart[] = [];
    for (const s of saved) {
      if (!s || typeof s.service !== 'string' || !Array.isArray(s.models)) continue;
      const gate = gateOf(s.service);
      if (!gate) continue;
      const models: SoakModel[] = [];
      for (const m of s.models) {
        if (m && typeof m.model === 'string' && typeof m.version === 'string' && (await active(m.model)) === m.version) models.push(m);
      }
      if (models.length) still.push({ service: s.service, models, gate, ...(typeof s.failed === 'string' ? { failed: s.failed } : {}) });
    }
    if (still.length) {
      this.o.logger.warn({ soaks: still.map((s) => s.service) }, 'the agent restarted during a soak: watching the metric gate again for its whole `for`');
      this.start(still);
    } else await this.save();
  }

  /** Start watching (a soak of the same service and model is replaced). */
  start(starts: readonly SoakStart[]): void {
    if (this.stopped || starts.length === 0) return;
    for (const s of starts) {
      for (const m of s.models) this.drop(m.model, `${m.model} ${m.version} switched again`, s.service);
      const since = this.o.clock.now();
      const soak: Soak = { ...s, since, samples: [], verdict: gateVerdict(ruleOf(s.gate), [], since, since) };
      this.soaks.push(soak);
      if (soak.failed) continue;
      this.o.logger.info({ service: s.service, models: s.models.map((m) => `${m.model} ${m.version}`), for: s.gate.for, every: s.gate.every }, `${s.service}: soaking under its metric gate for ${s.gate.for}`);
      this.schedule(soak);
    }
    void this.save();
    this.o.onChange();
  }

  /**
   * After a pass: a soak whose model no longer runs the version watched (a
   * newer switch, a rollback, a hand) ends for that model. `active` is what
   * the pass left active; undefined models are not known to this pass.
   */
  settle(active: ReadonlyMap<string, string | null>, degraded: ReadonlyArray<{ model: string; version: string }>): void {
    let changed = false;
    for (const s of [...this.soaks]) {
      const keep = s.models.filter((m) => {
        if (!active.has(m.model)) return true;
        const now = active.get(m.model);
        // A failed gate with nothing to go back to stays active, Degraded: the verdict is delivered.
        const delivered = s.failed !== undefined && degraded.some((d) => d.model === m.model && d.version === m.version);
        if (now === m.version && !delivered) return true;
        if (!s.failed) this.o.logger.info({ service: s.service, model: m.model, version: m.version, now }, `${s.service}: soak of ${m.model} ${m.version} superseded (${now ?? 'nothing'} active now)`);
        return false;
      });
      if (keep.length !== s.models.length) {
        changed = true;
        s.models = keep;
        if (keep.length === 0) this.remove(s);
      }
    }
    if (changed) {
      void this.save();
      this.o.onChange();
    }
  }

  /**
   * After every pass: soaks it superseded or rolled back end, and the metric
   * gates of the switches it found healthy (still active, not rolled back by
   * another service's check) start watching.
   */
  afterPass(result: Pick<ReconcileResult, 'models' | 'degraded'>, starts: readonly SoakStart[]): void {
    if (result.models.length === 0) return;
    this.settle(new Map(result.models.map((m) => [m.model, m.active ?? null] as const)), result.degraded);
    const healthy = (m: SoakModel): boolean => result.models.some((x) => x.model === m.model && x.active === m.version && x.outcome === 'activated');
    this.start(starts.map((s) => ({ ...s, models: s.models.filter(healthy) })).filter((s) => s.models.length > 0));
  }

  /** Models a gate watches now. */
  models(): Set<string> {
    return new Set(this.soaks.flatMap((s) => s.models.map((m) => m.model)));
  }

  /** Failed gates not yet rolled back, one per model, for the next pass. */
  lateVerdicts(): LateVerdict[] {
    const out: LateVerdict[] = [];
    for (const s of this.soaks) {
      if (!s.failed) continue;
      for (const m of s.models) out.push({ ...m, service: s.service, reason: `metric gate failed: ${s.failed}` });
    }
    return out;
  }

  views(): SoakView[] {
    return this.soaks.map((s) => ({
      service: s.service,
      models: s.models.map((m) => ({ ...m })),
      since: new Date(s.since).toISOString(),
      until: new Date(s.since + durationMs(s.gate.for)).toISOString(),
      state: s.failed ? 'failed' : 'watching',
      reason: s.failed ? `metric gate failed: ${s.failed}; rolling back` : s.verdict.reason,
      overdue: s.verdict.overdue,
      ...(s.verdict.last !== undefined ? { last: s.verdict.last } : {}),
    }));
  }

  get active(): boolean {
    return this.soaks.length > 0;
  }

  /** Resolves once no soak is watching (failed ones wait for their pass). For `agent --once`. */
  whenWatched(): Promise<void> {
    if (!this.soaks.some((s) => !s.failed)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const s of this.soaks) this.o.clock.clearTimeout(s.timer);
    this.wake();
    await this.saving;
  }

  private schedule(s: Soak): void {
    if (this.stopped) return;
    s.timer = this.o.clock.setTimeout(() => void this.tick(s), durationMs(s.gate.every));
  }

  private async tick(s: Soak): Promise<void> {
    if (this.stopped || !this.soaks.includes(s)) return;
    const sample = await queryMetric(this.o.fetch, s.gate, this.o.clock, this.abort.signal);
    if (this.stopped || !this.soaks.includes(s)) return;
    s.samples.push(sample);
    if (s.samples.length > MAX_SAMPLES) s.samples.splice(0, s.samples.length - MAX_SAMPLES);
    const log = { service: s.service, models: s.models.map((m) => `${m.model} ${m.version}`) };
    if (!sample.ok && !s.missing) this.o.logger.warn({ ...log, reason: sample.error }, `${s.service}: metric gate cannot be read; the soak waits for an answer (no rollback for a missing answer)`);
    if (sample.ok && s.missing) this.o.logger.info(log, `${s.service}: metric gate answers again`);
    s.missing = !sample.ok;
    const was = s.verdict;
    s.verdict = gateVerdict(ruleOf(s.gate), s.samples, s.since, this.o.clock.now());
    if (s.verdict.overdue && !was.overdue) this.o.logger.warn({ ...log, reason: s.verdict.reason }, `${s.service}: metric gate overdue; the site stays Progressing (soak)`);
    if (s.verdict.verdict === 'pass') {
      this.o.logger.info({ ...log, reason: s.verdict.reason }, `${s.service}: metric gate passed`);
      this.remove(s);
      void this.save();
    } else if (s.verdict.verdict === 'fail') {
      s.failed = s.verdict.reason;
      this.o.logger.error({ ...log, reason: s.verdict.reason }, `${s.service}: metric gate failed; rolling back`);
      void this.save();
      this.o.onFailed(`metric gate of ${s.service}: ${s.verdict.reason}`);
      this.wake();
    } else {
      this.schedule(s);
    }
    this.o.onChange();
  }

  private drop(model: string, why: string, service?: string): void {
    for (const s of [...this.soaks]) {
      if (service !== undefined && s.service !== service) continue;
      if (!s.models.some((m) => m.model === model)) continue;
      this.o.logger.info({ service: s.service, model }, `${s.service}: soak of ${model} superseded: ${why}`);
      s.models = s.models.filter((m) => m.model !== model);
      if (s.models.length === 0) this.remove(s);
    }
  }

  private remove(s: Soak): void {
    this.o.clock.clearTimeout(s.timer);
    this.soaks = this.soaks.filter((x) => x !== s);
    this.wake();
  }

  private wake(): void {
    if (!this.stopped && this.soaks.some((s) => !s.failed)) return;
    for (const w of this.waiters.splice(0)) w();
  }

  /** Writes one after another (the last one wins), each atomic; stop() waits for them. */
  private save(): Promise<void> {
    this.saving = this.saving.then(() => this.write());
    return this.saving;
  }

  private async write(): Promise<void> {
    const soaks: SoakStart[] = this.soaks.map((s) => ({ service: s.service, models: s.models, gate: s.gate, ...(s.failed ? { failed: s.failed } : {}) }));
    try {
      if (soaks.length === 0) await fsp.rm(this.file, { force: true });
      else await writeFileAtomic(this.file, `${JSON.stringify({ soaks }, null, 2)}\n`);
    } catch (err) {
      this.o.logger.warn({ file: this.file, err: errorMessage(err) }, 'cannot record the soaks in progress (an agent restart would forget them)');
    }
  }
}
