import { describe, expect, it } from 'vitest';
import type { RolloutSite } from '../registry/rollout-waves.ts';
import type { RolloutFile } from '../registry/schema.ts';
import { rolloutView } from './rollout.ts';

const fleet: RolloutSite[] = [
  { name: 'alpha', labels: { wave: 'canary' } },
  { name: 'beta', labels: {} },
  { name: 'gamma', labels: {} },
];

const rollout = (wave: string): RolloutFile => ({
  model: 'face', version: '2026-01-15', from: '2025-12-08',
  waves: [
    { name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '30m' },
    { name: 'quarter', sites: { percent: 25 }, soak: '2h' },
    { name: 'all', sites: 'all' },
  ],
  halt: { degraded: 1 },
  state: { wave, since: '2026-01-15T10:00:00Z', status: 'progressing' },
});

describe('rollout view', () => {
  it('describes the waves for people', () => {
    const v = rolloutView(rollout('quarter'), fleet);
    expect(v.waves.map((w) => [w.name, w.reached, w.current])).toEqual([['canary', true, false], ['quarter', true, true], ['all', false, false]]);
    expect(v.waves[0]!.sites).toEqual(['alpha']);
  });
});
