import { describe, expect, it } from 'vitest';
import { MaintenanceWindow } from '../registry/schema.ts';
import { plan, type DesiredInput } from './plan.ts';
import { holdForWindows } from './window.ts';

const nights = [MaintenanceWindow.parse({ start: '02:00', end: '05:00', tz: 'UTC' })];
const noon = new Date('2026-01-14T12:00:00Z');
const file = { name: 'w.bin', oid: 'a'.repeat(64), size: 10 };

function planFor(version: string, active: string | undefined, reason: DesiredInput['reason'] = 'current', lastApplied = active) {
  return plan({
    commit: 'c'.repeat(40), force: false,
    desired: [{ model: 'face', version, declared: version, reason, scheme: 'integer', files: [file] }],
    observed: new Map([['face', { active, desiredIntact: false, missing: [file] }]]),
    remembered: new Map([['face', { lastApplied, degraded: [] }]]),
  });
}

describe('maintenance windows in the plan', () => {
  it('holds an upgrade outside the window, still fetching it, and says when the window opens', () => {
    const p = planFor('2', '1');
    expect(holdForWindows(p, nights, noon, false)?.toISOString()).toBe('2026-01-15T02:00:00.000Z');
    expect(p.models[0]).toMatchObject({ action: 'fetch', reason: 'upgrade', held: 'window' });
    expect(p.models[0]!.detail).toContain('waiting for the maintenance window (opens 2026-01-15T02:00:00.000Z)');
  });

  it('does not hold inside the window, with --force, for a rollback or for a local pin', () => {
    const inside = planFor('2', '1');
    expect(holdForWindows(inside, nights, new Date('2026-01-14T03:00:00Z'), false)).toBeUndefined();
    expect(inside.models[0]!.held).toBeUndefined();
    const forced = planFor('2', '1');
    expect(holdForWindows(forced, nights, noon, true)).toBeUndefined();
    const rollback = planFor('1', '2');
    expect(rollback.models[0]!.reason).toBe('rollback');
    expect(holdForWindows(rollback, nights, noon, false)).toBeUndefined();
    expect(rollback.models[0]!.held).toBeUndefined();
    const pin = planFor('2', '1', 'pin');
    expect(holdForWindows(pin, nights, noon, false)).toBeUndefined();
  });

  it('holds nothing for a site without windows', () => {
    const p = planFor('2', '1');
    expect(holdForWindows(p, [], noon, false)).toBeUndefined();
    expect(p.models[0]!.held).toBeUndefined();
  });
});
