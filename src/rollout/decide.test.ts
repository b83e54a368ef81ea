import { describe, expect, it } from 'vitest';
import type { RolloutSite } from '../registry/rollout-waves.ts';
import type { RolloutFile } from '../registry/schema.ts';
import { conditionOn, decide, type SiteReport } from './decide.ts';

const T0 = Date.parse('2026-01-15T10:00:00Z');
const MIN = 60_000;
const fleet: RolloutSite[] = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'].map((name) => ({ name, labels: (name === 'alpha' ? { wave: 'canary' } : { ring: name < 'd' ? 'early' : 'late' }) as Record<string, string> }));

function rollout(wave = 'canary', status: RolloutFile['state']['status'] = 'progressing', halt = 1): RolloutFile {
  return {
    model: 'face', version: 'v2', from: 'v1',
    waves: [
      { name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '30m' },
      { name: 'early', sites: { labels: { ring: 'early' } }, soak: '10m' },
      { name: 'all', sites: 'all' },
    ],
    halt: { degraded: halt },
    state: { wave, since: new Date(T0).toISOString(), status },
  };
}

const on = (site: string, active: string, extra: Partial<SiteReport> & { owed?: boolean } = {}): SiteReport => ({
  site, models: [{ model: 'face', active, desired: 'v2', ...(extra.owed ? { verdictOwed: true } : {}) }], degraded: extra.degraded ?? [],
});
const reports = (...rs: SiteReport[]) => new Map(rs.map((r) => [r.site, r]));

describe('controller decisions (controlled clock)', () => {
  it('waits for the canary to report Ready on the version', () => {
    const d = decide({ rollout: rollout(), population: fleet, reports: reports(on('alpha', 'v1')), readySince: new Map(), now: T0 + MIN });
    expect(d.decision).toEqual({ kind: 'wait', why: 'waiting for 1 site to be Ready on v2: alpha' });
  });

  it('does not count a switch whose health verdict is owed as Ready', () => {
    expect(conditionOn(on('alpha', 'v2', { owed: true }), 'face', 'v2')).toBe('pending');
    expect(conditionOn(undefined, 'face', 'v2')).toBe('pending');
  });

  it('soaks from when the canary was first seen Ready, then advances to the next wave', () => {
    const r = rollout();
    const first = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v2')), readySince: new Map(), now: T0 + 5 * MIN });
    expect(first.decision).toEqual({ kind: 'wait', why: 'wave canary soaking: 30m left of 30m' });
    expect(first.readySince.get('alpha')).toBe(T0 + 5 * MIN);
    const early = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v2')), readySince: first.readySince, now: T0 + 34 * MIN });
    expect(early.decision.kind).toBe('wait');
    const due = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v2')), readySince: first.readySince, now: T0 + 35 * MIN });
    expect(due.decision).toMatchObject({ kind: 'advance', from: 'canary', to: 'early' });
  });

  it('without memory (a one-shot run), counts the soak from state.since', () => {
    const r = rollout();
    const d = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v2')), readySince: new Map(), now: T0 + 30 * MIN, firstSeen: T0 });
    expect(d.decision).toMatchObject({ kind: 'advance', to: 'early' });
  });

  it('restarts the soak when a site stops being Ready', () => {
    const r = rollout();
    const a = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v2')), readySince: new Map(), now: T0 });
    const gone = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v1')), readySince: a.readySince, now: T0 + 20 * MIN });
    expect(gone.readySince.has('alpha')).toBe(false);
    const back = decide({ rollout: r, population: fleet, reports: reports(on('alpha', 'v2')), readySince: gone.readySince, now: T0 + 40 * MIN });
    expect(back.decision).toEqual({ kind: 'wait', why: 'wave canary soaking: 30m left of 30m' });
  });

  it('counts the soak from state.since when the wave was reached later than the sites became Ready', () => {
    const r = rollout('early');
    r.state.since = new Date(T0 + 60 * MIN).toISOString();
    const ready = new Map([['alpha', T0], ['beta', T0], ['gamma', T0]]);
    const all = reports(on('alpha', 'v2'), on('beta', 'v2'), on('gamma', 'v2'));
    expect(decide({ rollout: r, population: fleet, reports: all, readySince: ready, now: T0 + 69 * MIN }).decision.kind).toBe('wait');
    expect(decide({ rollout: r, population: fleet, reports: all, readySince: ready, now: T0 + 70 * MIN }).decision).toMatchObject({ kind: 'advance', to: 'all' });
  });

  it('halts when a site of a reached wave is Degraded on the version', () => {
    const r = rollout('early');
    const d = decide({
      rollout: r, population: fleet, now: T0,
      reports: reports(on('alpha', 'v2'), on('beta', 'v1', { degraded: [{ model: 'face', version: 'v2' }] }), on('gamma', 'v2')),
      readySince: new Map(),
    });
    expect(d.decision).toEqual({ kind: 'halt', degraded: ['beta'], why: '1 site Degraded on v2: beta (halt at 1)' });
  });

  it('ignores a Degraded site outside the reached waves and below the halt threshold', () => {
    const outside = decide({ rollout: rollout(), population: fleet, now: T0, readySince: new Map(), reports: reports(on('alpha', 'v2'), on('delta', 'v1', { degraded: [{ model: 'face', version: 'v2' }] })) });
    expect(outside.decision.kind).toBe('wait');
    const below = decide({ rollout: rollout('early', 'progressing', 2), population: fleet, now: T0, readySince: new Map(), reports: reports(on('alpha', 'v2'), on('beta', 'v1', { degraded: [{ model: 'face', version: 'v2' }] })) });
    expect(below.decision).toEqual({ kind: 'wait', why: 'waiting for 1 site to be Ready on v2: beta' });
  });

  it('halts a paused rollout too, but never advances it', () => {
    const deg = reports(on('alpha', 'v1', { degraded: [{ model: 'face', version: 'v2' }] }));
    expect(decide({ rollout: rollout('canary', 'paused'), population: fleet, reports: deg, readySince: new Map(), now: T0 }).decision.kind).toBe('halt');
    const ok = decide({ rollout: rollout('canary', 'paused'), population: fleet, reports: reports(on('alpha', 'v2')), readySince: new Map([['alpha', T0]]), now: T0 + 999 * MIN });
    expect(ok.decision).toEqual({ kind: 'wait', why: 'the rollout is paused' });
  });

  it('does nothing once halted', () => {
    const deg = reports(on('alpha', 'v1', { degraded: [{ model: 'face', version: 'v2' }] }));
    expect(decide({ rollout: rollout('early', 'halted'), population: fleet, reports: deg, readySince: new Map(), now: T0 }).decision).toEqual({ kind: 'wait', why: 'the rollout is halted' });
  });

  it('finishes at the last wave once every site is Ready (no soak there)', () => {
    const all = reports(...fleet.map((s) => on(s.name, 'v2')));
    expect(decide({ rollout: rollout('all'), population: fleet, reports: all, readySince: new Map(), now: T0 }).decision).toEqual({ kind: 'finish', why: 'every site Ready on v2' });
  });
});
