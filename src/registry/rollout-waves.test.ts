import { describe, expect, it } from 'vitest';
import type { RolloutFile } from './schema.ts';
import { reachedSites, resolveRollout, selectWave, waveMembers, type RolloutSite } from './rollout-waves.ts';

const fleet: RolloutSite[] = [
  { name: 'alpha', labels: { wave: 'canary', region: 'north' } },
  { name: 'beta', labels: { region: 'north' } },
  { name: 'gamma', labels: { region: 'south' } },
  { name: 'delta', labels: { region: 'south' } },
  { name: 'epsilon', labels: { region: 'south' } },
  { name: 'zeta', labels: {} },
  { name: 'eta', labels: {} },
  { name: 'theta', labels: {} },
];

function rollout(wave: string, status: RolloutFile['state']['status'] = 'progressing', version = '2026-01-15'): RolloutFile {
  return {
    model: 'face', version, from: '2025-12-08',
    waves: [
      { name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '30m' },
      { name: 'quarter', sites: { percent: 25 }, soak: '2h' },
      { name: 'all', sites: 'all' },
    ],
    halt: { degraded: 1 },
    state: { wave, since: '2026-01-15T10:00:00Z', status },
  };
}

describe('rollout resolution', () => {
  it('gives the canary wave the new version and everyone else from', () => {
    const r = rollout('canary');
    expect(resolveRollout(r, 'alpha', fleet)).toEqual({ version: '2026-01-15', wave: 'canary', reached: true });
    for (const s of fleet.filter((s) => s.name !== 'alpha')) expect(resolveRollout(r, s.name, fleet).version).toBe('2025-12-08');
  });

  it('is cumulative: reaching the second wave keeps the canary on version', () => {
    const r = rollout('quarter');
    const on = reachedSites(r, fleet);
    expect(on).toContain('alpha');
    // 25% of 8 sites = 2, the canary counts (it is among the candidates), so the wave adds 1 or 2.
    const quarter = waveMembers(r, fleet)[1]!;
    expect(quarter.length).toBeGreaterThanOrEqual(1);
    expect(on.length).toBe(1 + quarter.length);
    expect(resolveRollout(r, 'alpha', fleet).version).toBe('2026-01-15');
  });

  it('picks percent by a stable hash of (model, version, site): same sites on a re-run and in any order', () => {
    const r = rollout('quarter');
    const a = [...selectWave(r, { percent: 25 }, fleet)];
    const b = [...selectWave(r, { percent: 25 }, [...fleet].reverse())];
    expect(a.sort()).toEqual(b.sort());
    expect(a).toHaveLength(2);
    // Another version ranks sites differently somewhere among these few (a different hash input).
    const picks = new Set<string>();
    for (let v = 0; v < 20; v++) for (const s of selectWave(rollout('quarter', 'progressing', `v${v}`), { percent: 25 }, fleet)) picks.add(s);
    expect(picks.size).toBeGreaterThan(2);
  });

  it('takes at least one site for a small percent of a small fleet, and 100 takes all', () => {
    const r = rollout('quarter');
    expect(selectWave(r, { percent: 1 }, fleet).size).toBe(1);
    expect(selectWave(r, { percent: 100 }, fleet).size).toBe(fleet.length);
  });

  it('combines labels and percent: a percent of the matching sites', () => {
    const r = rollout('quarter');
    const picked = selectWave(r, { labels: { region: 'south' }, percent: 50 }, fleet);
    expect(picked.size).toBe(2);
    for (const s of picked) expect(['gamma', 'delta', 'epsilon']).toContain(s);
  });

  it('puts a site in the first wave that selects it', () => {
    const members = waveMembers(rollout('all'), fleet);
    expect(members[0]).toEqual(['alpha']);
    expect(members.flat().sort()).toEqual(fleet.map((s) => s.name).sort());
    expect(new Set(members.flat()).size).toBe(fleet.length);
  });

  it('sends every site back to from when halted, and everyone to version when done', () => {
    for (const s of fleet) expect(resolveRollout(rollout('quarter', 'halted'), s.name, fleet).version).toBe('2025-12-08');
    for (const s of fleet) expect(resolveRollout(rollout('canary', 'done'), s.name, fleet).version).toBe('2026-01-15');
  });

  it('keeps reached waves when paused', () => {
    expect(resolveRollout(rollout('canary', 'paused'), 'alpha', fleet).version).toBe('2026-01-15');
    expect(resolveRollout(rollout('canary', 'paused'), 'beta', fleet).version).toBe('2025-12-08');
  });

  it('gives a site outside the population from', () => {
    expect(resolveRollout(rollout('all'), 'nowhere', fleet)).toEqual({ version: '2025-12-08', wave: undefined, reached: false });
  });

});
