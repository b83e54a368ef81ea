/**
 * The controller's decision for one rollout, from what the sites report and
 * the time: pure (the clock is an argument), so every rule is unit-tested.
 *
 * - halt: at least `halt.degraded` sites of the reached waves report
 *   Degraded on `version` (checked while paused too: a pause stops advancing,
 *   not watching);
 * - advance (or finish, at the last wave): every site of the reached waves is
 *   Ready on `version` (a site whose metric gate still watches, Progressing
 *   (soak), is not; one whose gate failed rolled back and reports Degraded),
 *   and has been for the wave's `soak`, counted from the
 *   later of `state.since` and the moment the last of them was first seen Ready;
 * - a wave with its own `gate: {metric}` also needs that gate's verdict
 *   (src/gate's gateVerdict, the rule sites soak by, computed by the
 *   controller from its own queries) to pass; a failing gate halts;
 * - otherwise wait, saying for what.
 */
import { reachedSites, reachedWaveCount, type RolloutSite } from '../registry/rollout-waves.ts';
import type { RolloutFile } from '../registry/schema.ts';
import { formatDuration, parseDuration } from '../util/duration.ts';
import type { GateVerdict } from '../gate/metric-gate.ts';

/** One model on one site as its last report says (parsed from untrusted JSON by observe.ts). */
export interface ModelReport {
  model: string;
  active?: string;
  desired?: string;
  /** Switched to, health verdict not in yet. */
  verdictOwed?: boolean;
  /** Switched to and watched by the site's metric gate (Progressing (soak)): not Ready until it passes. */
  soaking?: boolean;
  outcome?: string;
}

export interface SiteReport {
  site: string;
  models: ModelReport[];
  /** Versions that failed their health check on the site (lastPass.degraded). */
  degraded: Array<{ model: string; version: string }>;
}

export type Condition = 'ready' | 'degraded' | 'pending';

/** How `site` stands on `version` of `model`. No report, or another version active, is pending. */
export function conditionOn(report: SiteReport | undefined, model: string, version: string): Condition {
  if (!report) return 'pending';
  const m = report.models.find((x) => x.model === model);
  if (report.degraded.some((d) => d.model === model && d.version === version)) return 'degraded';
  if (m?.outcome === 'degraded' && m.desired === version) return 'degraded';
  if (m?.active === version && !m.verdictOwed && !m.soaking) return 'ready';
  return 'pending';
}

/** When each site was first seen Ready on the version, in ms; kept by the controller between ticks. */
export type ReadySince = ReadonlyMap<string, number>;

export type Decision =
  | { kind: 'wait'; why: string }
  | { kind: 'advance'; from: string; to: string; why: string }
  | { kind: 'finish'; why: string }
  | { kind: 'halt'; why: string; degraded: string[] };

export interface DecideInput {
  rollout: RolloutFile;
  population: readonly RolloutSite[];
  reports: ReadonlyMap<string, SiteReport>;
  readySince: ReadySince;
  now: number;
  /**
   * When a site seen Ready for the first time counts as Ready from (default
   * now). A one-shot controller (`rollout run --once`) has no memory between
   * runs and passes the wave's `state.since`.
   */
  firstSeen?: number;
  /** The verdict of the current wave's own `gate:` so far (absent: the wave has none). */
  gate?: GateVerdict;
}

export interface DecideOutput {
  decision: Decision;
  /** readySince after this observation: sites Ready now keep (or get) their time, the others lose it. */
  readySince: Map<string, number>;
}

export function decide(input: DecideInput): DecideOutput {
  const { rollout: r, population, reports, now } = input;
  const sites = reachedSites(r, population);
  const readySince = new Map<string, number>();
  const degraded: string[] = [];
  const pending: string[] = [];
  for (const s of sites) {
    const c = conditionOn(reports.get(s), r.model, r.version);
    if (c === 'ready') readySince.set(s, input.readySince.get(s) ?? input.firstSeen ?? now);
    else if (c === 'degraded') degraded.push(s);
    else pending.push(s);
  }
  const out = (decision: Decision): DecideOutput => ({ decision, readySince });
  const status = r.state.status;
  if (status === 'halted' || status === 'done') return out({ kind: 'wait', why: `the rollout is ${status}` });
  if (degraded.length >= r.halt.degraded) {
    return out({ kind: 'halt', degraded, why: `${degraded.length} site${degraded.length === 1 ? '' : 's'} Degraded on ${r.version}: ${degraded.join(', ')} (halt at ${r.halt.degraded})` });
  }
  const at0 = reachedWaveCount(r) - 1;
  if (input.gate?.verdict === 'fail') {
    return out({ kind: 'halt', degraded, why: `wave ${r.waves[at0]?.name ?? '?'} gate failed: ${input.gate.reason}` });
  }
  if (status === 'paused') return out({ kind: 'wait', why: 'the rollout is paused' });
  if (sites.length === 0) return out({ kind: 'wait', why: 'no site is in the reached waves' });
  if (pending.length || degraded.length) {
    const notReady = [...degraded, ...pending];
    return out({ kind: 'wait', why: `waiting for ${notReady.length} site${notReady.length === 1 ? '' : 's'} to be Ready on ${r.version}: ${notReady.join(', ')}` });
  }
  const at = reachedWaveCount(r) - 1;
  const wave = r.waves[at]!;
  const soakMs = wave.soak ? (parseDuration(wave.soak) ?? 0) : 0;
  const since = Date.parse(r.state.since);
  const start = Math.max(Number.isFinite(since) ? since : now, ...readySince.values());
  const left = start + soakMs - now;
  if (left > 0) return out({ kind: 'wait', why: `wave ${wave.name} soaking: ${formatDuration(left)} left of ${wave.soak}` });
  if (wave.gate && input.gate?.verdict !== 'pass') return out({ kind: 'wait', why: `wave ${wave.name} gate: ${input.gate?.reason ?? 'not asked yet'}` });
  const soaked = wave.soak ? ` for ${wave.soak}` : '';
  if (at === r.waves.length - 1) return out({ kind: 'finish', why: `every site Ready on ${r.version}${soaked}` });
  const next = r.waves[at + 1]!;
  return out({ kind: 'advance', from: wave.name, to: next.name, why: `${sites.length} site${sites.length === 1 ? '' : 's'} of the reached waves Ready on ${r.version}${soaked}` });
}
