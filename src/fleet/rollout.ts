/**
 * Rollouts as people see them: each wave with its sites, whether it is
 * reached, where the rollout stands. For the dashboard, `rollout status`
 * and GET /api/v1/rollouts; the rules themselves are registry/rollout-waves.ts.
 */
import { reachedWaveCount, waveMembers, type RolloutSite } from '../registry/rollout-waves.ts';
import type { RolloutFile } from '../registry/schema.ts';

/** One wave as the dashboard and `rollout status` show it. */
export interface WaveView {
  name: string;
  sites: string[];
  reached: boolean;
  /** The wave the rollout stands at. */
  current: boolean;
  soak?: string;
}

export interface RolloutView {
  model: string;
  version: string;
  from: string;
  status: RolloutFile['state']['status'];
  since: string;
  reason?: string;
  waves: WaveView[];
}

/** A rollout and its waves, for people (dashboard, `rollout status`, `status --hub`). */
export function rolloutView(r: RolloutFile, population: readonly RolloutSite[]): RolloutView {
  const members = waveMembers(r, population);
  const reachedN = reachedWaveCount(r);
  const at = r.waves.findIndex((w) => w.name === r.state.wave);
  return {
    model: r.model, version: r.version, from: r.from, status: r.state.status, since: r.state.since,
    ...(r.state.reason ? { reason: r.state.reason } : {}),
    waves: r.waves.map((w, i) => ({ name: w.name, sites: members[i]!, reached: i < reachedN, current: i === at, ...(w.soak ? { soak: w.soak } : {}) })),
  };
}
