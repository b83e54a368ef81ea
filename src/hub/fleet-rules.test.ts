/**
 * The fleet rules without a network: a site's condition from its report,
 * what a dashboard cell says, `wait`'s verdict, the exit codes of `status`,
 * which transitions notify.
 */
import { describe, expect, it } from 'vitest';
import { fleetExitCode, type FleetSite } from '../agent/fleet.ts';
import { storeExitCode } from '../commands/status.ts';
import { judgeWait, parseSelector, progressLine } from '../commands/wait-judge.ts';
import type { StoreStatus } from '../reconcile/status.ts';
import { cellFor } from './dashboard/view.ts';
import { conditionClass, esc } from './dashboard/render.ts';
import { eventFor } from './notify/index.ts';
import { siteCondition, staleAfterMs } from './site-condition.ts';

const T = Date.parse('2026-01-01T12:00:00Z');

describe('siteCondition', () => {
  it('takes the agent\'s word, with the reason from its matching condition', () => {
    expect(siteCondition({ health: 'Ready' }, T, T)).toEqual({ condition: 'Ready', reason: '' });
    expect(siteCondition({ health: 'Conflict', conditions: [{ type: 'Conflict', status: true, reason: 'LocalChangeNewer', message: 'active 3 newer' }] }, T, T))
      .toEqual({ condition: 'Conflict', reason: 'LocalChangeNewer: active 3 newer' });
    expect(siteCondition({ health: 'Failed', lastError: 'sites/a.yaml:3:1: bad' }, T, T)).toEqual({ condition: 'Failed', reason: 'sites/a.yaml:3:1: bad' });
  });
  it('passes a newer agent\'s condition through and refuses garbage', () => {
    expect(siteCondition({ health: 'Stalled (untrusted)', lastError: 'UntrustedCommit' }, T, T).condition).toBe('Stalled (untrusted)');
    expect(siteCondition({ health: 'Waiting (window)' }, T, T).condition).toBe('Waiting (window)');
    expect(siteCondition({ health: 'Stalled', conditions: [{ type: 'Stalled', status: true, reason: 'UntrustedCommit', message: 'tip abc unsigned' }] }, T, T))
      .toEqual({ condition: 'Stalled', reason: 'UntrustedCommit: tip abc unsigned' });
    expect(siteCondition({ health: '<b>x</b>' }, T, T).condition).toBe('Unknown');
    expect(siteCondition({ health: 42 }, T, T).condition).toBe('Unknown');
  });
  it('adds Stopped and Stale, which only the hub can see', () => {
    expect(siteCondition({ health: 'Ready', phase: 'stopped' }, T, T + 1).condition).toBe('Stopped');
    // Every 5 minutes, 3 periods: stale after 15 minutes of silence (the agent's own bound is smaller).
    const r = { health: 'Ready', schedule: '*/5 * * * *', staleAfterSeconds: 600 };
    expect(staleAfterMs(r, T, 3)).toBe(900_000);
    expect(siteCondition(r, T, T + 899_000).condition).toBe('Ready');
    expect(siteCondition(r, T, T + 901_000)).toMatchObject({ condition: 'Stale', reason: 'no report for 15 min (expected at least every 15 min)' });
    // An unparsable schedule falls back to 15 minutes.
    expect(staleAfterMs({ schedule: 'nonsense' }, T, 2)).toBe(1_800_000);
  });
});

describe('dashboard cells', () => {
  const report = { lastPass: { degraded: [{ model: 'face', version: '3', reason: 'exit 1' }], conflicts: [{ model: 'ssd', detail: 'active 9 newer than 8' }] } };
  it('marks degraded, conflict, progressing, pinned and ok', () => {
    expect(cellFor({ model: 'face', declared: '3', desired: '3', active: '2' }, report)).toMatchObject({ state: 'degraded', note: '3 failed its health check: exit 1' });
    expect(cellFor({ model: 'ssd', declared: '8', desired: '8', active: '9' }, report)).toMatchObject({ state: 'conflict', note: 'active 9 newer than 8' });
    expect(cellFor({ model: 'x', declared: '2', desired: '2', active: '1' }, {})).toMatchObject({ state: 'progressing' });
    expect(cellFor({ model: 'x', declared: '2', desired: '2', active: '2', verdictOwed: { version: '2' } }, {})).toMatchObject({ state: 'progressing' });
    expect(cellFor({ model: 'x', declared: '2', desired: '1', active: '1', drift: 'pinned' }, {})).toMatchObject({ state: 'pinned' });
    expect(cellFor({ model: 'x', declared: '2', desired: '1', active: '1' }, {})).toMatchObject({ state: 'ok', note: 'site override 1' });
  });
  it('escapes and classes unknown conditions neutrally', () => {
    expect(esc(`<img src=x onerror="a">'`)).toBe('&#60;img src=x onerror=&#34;a&#34;&#62;&#39;');
    expect(conditionClass('Stalled (untrusted)')).toBe('c-stalled');
    expect(conditionClass('Quarantined (by ops)')).toBe('c-other');
    expect(conditionClass('Waiting (window)')).toBe('c-waiting');
  });
});

const fs = (site: string, extra: Partial<FleetSite>): FleetSite => ({ site, receivedAt: new Date(T).toISOString(), condition: 'Ready', models: [{ model: 'face', declared: '2', desired: '2', active: '2' }], ...extra });

describe('wait', () => {
  it('selects by names and globs', () => {
    const sel = parseSelector('beta,edge-*');
    expect(['beta', 'edge-1', 'edge-', 'alpha', 'xedge-1'].filter(sel)).toEqual(['beta', 'edge-1', 'edge-']);
    expect(parseSelector(undefined)('anything')).toBe(true);
  });
  it('is Ready only on the version, verdict in, not stale or stopped; Degraded on that version wins', () => {
    const sites = [
      fs('a', {}),
      fs('b', { models: [{ model: 'face', declared: '2', desired: '2', active: '1' }] }),
      fs('c', { condition: 'Stale' }),
      fs('d', { models: [{ model: 'other', active: '1' }] }),
      fs('e', { lastPass: { degraded: [{ model: 'face', version: '2' }] } }),
      fs('f', { lastPass: { degraded: [{ model: 'face', version: '1' }] } }),
    ];
    const j = judgeWait(sites, 'face', '2', undefined);
    expect(j.ready).toEqual(['a', 'f']);
    expect(j.progressing.map((p) => p.site)).toEqual(['b', 'c']);
    expect(j.degraded.map((p) => p.site)).toEqual(['e']);
    expect(judgeWait(sites, 'face', '2', 'a,zz').missing).toEqual(['zz']);
  });
  it('does not wait on a site told to run another version (override, pin) unless it is named; one that has not seen the change yet is waited on', () => {
    const sites = [
      fs('a', {}),
      fs('gamma', { models: [{ model: 'face', declared: '2', desired: '1', active: '1' }] }),
      fs('late', { models: [{ model: 'face', declared: '1', desired: '1', active: '1' }] }),
    ];
    const j = judgeWait(sites, 'face', '2', undefined);
    expect(j.ready).toEqual(['a']);
    expect(j.held).toEqual([{ site: 'gamma', why: 'told to run 1 (override or pin)' }]);
    expect(j.progressing.map((p) => p.site)).toEqual(['late']);
    expect(progressLine('face', '2', j, 3000)).toContain('not waiting on gamma (told to run 1 (override or pin))');
    // Named, it is waited on (the operator asked for it).
    expect(judgeWait(sites, 'face', '2', 'gamma').progressing.map((p) => p.site)).toEqual(['gamma']);
  });
});

describe('exit codes', () => {
  it('status --hub: 4 degraded beats 3 conflict', () => {
    expect(fleetExitCode([fs('a', {})])).toBe(0);
    expect(fleetExitCode([fs('a', {}), fs('b', { condition: 'Conflict' })])).toBe(3);
    expect(fleetExitCode([fs('a', { condition: 'Degraded' }), fs('b', { condition: 'Conflict' })])).toBe(4);
  });
  it('status --store: 4 for a degraded model, 3 for a conflict', () => {
    const base = { models: [] } as unknown as StoreStatus;
    expect(storeExitCode(base)).toBe(0);
    expect(storeExitCode({ ...base, models: [{ model: 'm', conflict: { active: '2', declared: '1' } }] } as unknown as StoreStatus)).toBe(3);
    expect(storeExitCode({ ...base, models: [{ model: 'm', conflict: { active: '2', declared: '1' } }, { model: 'n', degraded: { version: '3' } }] } as unknown as StoreStatus)).toBe(4);
  });
});

describe('notify events', () => {
  it('degraded, conflict, stale; recovered only after one of those', () => {
    const bad = new Map<string, string>();
    const t = (from: string | null, to: string): ReturnType<typeof eventFor> => eventFor({ seq: 1, at: '', site: 's', from, to, reason: '' }, bad);
    expect(t(null, 'Ready')).toBeNull();
    expect(t('Ready', 'Degraded')).toBe('degraded');
    expect(t('Degraded', 'Ready')).toBe('recovered');
    expect(t('Ready', 'Failed')).toBeNull();
    expect(t('Failed', 'Ready')).toBeNull();
    expect(t('Ready', 'Stale')).toBe('stale');
    expect(t('Stale', 'Conflict')).toBe('conflict');
    expect(t('Conflict', 'Ready')).toBe('recovered');
  });
});
