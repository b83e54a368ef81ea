import { describe, expect, it } from 'vitest';
import { plan, planModel, type DesiredInput, type ObservedInput, type RememberedInput } from './plan.ts';

const C = 'c0ffee'.padEnd(40, '0');
const oid = (n: number): string => n.toString(16).padStart(64, '0');
const files = (...ns: number[]) => ns.map((n) => ({ name: `f${n}.bin`, oid: oid(n), size: n * 10 }));

function want(over: Partial<DesiredInput> = {}): DesiredInput {
  return { model: 'm', version: '2025-02-01', declared: '2025-02-01', reason: 'current', scheme: 'date', files: files(1, 2), ...over };
}
function seen(over: Partial<ObservedInput> = {}): ObservedInput {
  return { active: undefined, desiredIntact: false, missing: [], ...over };
}
function mem(over: Partial<RememberedInput> = {}): RememberedInput {
  return { degraded: [], ...over };
}
const decide = (d: DesiredInput, o: ObservedInput, r: RememberedInput, force = false) => planModel(d, o, r, C, force);

describe('planModel', () => {
  it('does nothing when the desired version is active and intact', () => {
    const p = decide(want(), seen({ active: '2025-02-01', desiredIntact: true }), mem({ lastApplied: '2025-02-01' }));
    expect(p).toMatchObject({ action: 'none', reason: 'in-sync' });
    expect(p.fetch).toEqual([]);
  });

  it('installs on an empty store, fetching only what is missing', () => {
    const p = decide(want(), seen({ missing: files(2) }), mem());
    expect(p).toMatchObject({ action: 'fetch', reason: 'install', bytes: 20 });
    expect(p.fetch.map((o) => o.oid)).toEqual([oid(2)]);
  });

  it('activates without fetching when every object is already in the store', () => {
    expect(decide(want(), seen({ missing: [] }), mem())).toMatchObject({ action: 'activate', reason: 'install' });
  });

  it('upgrades when the registry declares a newer version', () => {
    const p = decide(want(), seen({ active: '2025-01-01', missing: files(1) }), mem({ lastApplied: '2025-01-01' }));
    expect(p).toMatchObject({ action: 'fetch', reason: 'upgrade' });
    expect(p.detail).toContain('2025-01-01 → 2025-02-01');
  });

  it('applies a revert (declared goes back) as an authorised rollback, not a conflict', () => {
    const p = decide(want({ version: '2025-01-01', declared: '2025-01-01' }), seen({ active: '2025-02-01' }), mem({ lastApplied: '2025-02-01' }));
    expect(p).toMatchObject({ action: 'activate', reason: 'rollback' });
  });

  it('reports a conflict when the active version was changed on the site and is newer than declared', () => {
    const p = decide(want({ version: '2025-01-01', declared: '2025-01-01' }), seen({ active: '2025-03-01' }), mem({ lastApplied: '2025-01-01' }));
    expect(p).toMatchObject({ action: 'conflict', reason: 'conflict', active: '2025-03-01', desired: '2025-01-01' });
    expect(p.detail).toMatch(/--force/);
  });

  it('applies the declared version over a conflict with force', () => {
    const p = decide(want({ version: '2025-01-01', declared: '2025-01-01' }), seen({ active: '2025-03-01', missing: files(1) }), mem({ lastApplied: '2025-01-01' }), true);
    expect(p).toMatchObject({ action: 'fetch', reason: 'forced' });
  });

  it('converges a site changed by hand to an older version than declared', () => {
    const p = decide(want(), seen({ active: '2024-06-01' }), mem({ lastApplied: '2025-01-01' }));
    expect(p).toMatchObject({ action: 'activate', reason: 'replace-drift' });
  });

  it('treats an active version it never applied (no memory) and newer than declared as a conflict', () => {
    expect(decide(want(), seen({ active: '2026-01-01' }), mem()).action).toBe('conflict');
  });

  it('treats an unorderable drifted version as a conflict (never guesses)', () => {
    const p = decide(want({ scheme: null, version: 'b', declared: 'b' }), seen({ active: 'x' }), mem({ lastApplied: 'a' }));
    expect(p.action).toBe('conflict');
    expect(p.detail).toContain('cannot be ordered');
  });

  it('follows a local pin and reports it as drift, even to an older version', () => {
    const p = decide(want({ version: '2024-01-01', reason: 'pin' }), seen({ active: '2025-02-01', missing: files(1) }), mem({ lastApplied: '2025-02-01' }));
    expect(p).toMatchObject({ action: 'fetch', reason: 'pin' });
    expect(p.drift).toMatch(/pinned to 2024-01-01.*declares 2025-02-01/);
  });

  it('a pin never conflicts, even over a newer hand-made change', () => {
    const p = decide(want({ version: '2025-01-01', declared: '2025-02-01', reason: 'pin' }), seen({ active: '2026-01-01' }), mem({ lastApplied: '2025-02-01' }));
    expect(p.action).toBe('activate');
  });

  it('a lifted pin newer than declared is a conflict; older converges', () => {
    const newerPin = decide(want(), seen({ active: '2025-05-01' }), mem({ lastApplied: '2025-02-01' }));
    expect(newerPin.action).toBe('conflict');
    const olderPin = decide(want(), seen({ active: '2024-05-01' }), mem({ lastApplied: '2025-02-01' }));
    expect(olderPin).toMatchObject({ action: 'activate', reason: 'replace-drift' });
  });

  it('follows a site override like the registry (it is the registry speaking)', () => {
    const p = decide(want({ version: '2024-01-01', reason: 'override' }), seen({ active: '2025-02-01' }), mem({ lastApplied: '2025-02-01' }));
    expect(p).toMatchObject({ action: 'activate', reason: 'rollback' });
    expect(p.drift).toBeUndefined();
  });

  it('does not retry a version that failed its health check at the same commit', () => {
    const p = decide(want(), seen({ active: '2025-01-01' }), mem({ lastApplied: '2025-01-01', degraded: [{ version: '2025-02-01', commit: C }] }));
    expect(p).toMatchObject({ action: 'none', reason: 'degraded' });
  });

  it('keeps a degraded first install (nothing to go back to) reported degraded at the same commit', () => {
    const p = decide(want(), seen({ active: '2025-02-01', desiredIntact: true }), mem({ degraded: [{ version: '2025-02-01', commit: C }] }));
    expect(p).toMatchObject({ action: 'none', reason: 'degraded' });
    const later = decide(want(), seen({ active: '2025-02-01', desiredIntact: true }), mem({ degraded: [{ version: '2025-02-01', commit: 'old' }] }));
    expect(later).toMatchObject({ action: 'none', reason: 'in-sync' });
  });

  it('retries a degraded version once the registry commit changes', () => {
    const p = decide(want(), seen({ active: '2025-01-01' }), mem({ lastApplied: '2025-01-01', degraded: [{ version: '2025-02-01', commit: 'old' }] }));
    expect(p).toMatchObject({ action: 'activate', reason: 'upgrade' });
  });

  it('repairs the active version when its directory is damaged', () => {
    const p = decide(want(), seen({ active: '2025-02-01', desiredIntact: false, missing: files(2) }), mem({ lastApplied: '2025-02-01' }));
    expect(p).toMatchObject({ action: 'fetch', reason: 'repair' });
  });

  it('reports an error for a desired version the registry does not publish', () => {
    const p = decide(want({ version: '2030-01-01', reason: 'pin', files: undefined }), seen({ active: '2025-02-01' }), mem());
    expect(p).toMatchObject({ action: 'error', reason: 'unpublished' });
  });

  it('orders semver and integer versions by their scheme', () => {
    const semver = decide(want({ scheme: 'semver', version: '1.10.0', declared: '1.10.0' }), seen({ active: '1.9.0' }), mem({ lastApplied: '1.8.0' }));
    expect(semver.reason).toBe('replace-drift'); // 1.9.0 < 1.10.0 although "1.9.0" > "1.10.0" as text
    const integer = decide(want({ scheme: 'integer', version: '9', declared: '9' }), seen({ active: '10' }), mem({ lastApplied: '9' }));
    expect(integer.action).toBe('conflict');
  });
});

describe('plan', () => {
  it('fetches shared content once across models and totals bytes', () => {
    const p = plan({
      commit: C,
      force: false,
      desired: [want({ model: 'a' }), want({ model: 'b', files: files(2, 3) })],
      observed: new Map([
        ['a', seen({ missing: files(1, 2) })],
        ['b', seen({ missing: files(2, 3) })],
      ]),
      remembered: new Map(),
    });
    expect(p.fetch.map((o) => o.oid).sort()).toEqual([oid(1), oid(2), oid(3)]);
    expect(p.bytes).toBe(60);
    expect(p.models.map((m) => m.action)).toEqual(['fetch', 'fetch']);
  });

  it('collects conflicts and leaves other models planned', () => {
    const p = plan({
      commit: C,
      force: false,
      desired: [want({ model: 'a', version: '2025-01-01', declared: '2025-01-01' }), want({ model: 'b' })],
      observed: new Map([
        ['a', seen({ active: '2025-06-01' })],
        ['b', seen({ active: '2025-01-01' })],
      ]),
      remembered: new Map([
        ['a', mem({ lastApplied: '2025-01-01' })],
        ['b', mem({ lastApplied: '2025-01-01' })],
      ]),
    });
    expect(p.conflicts.map((m) => m.model)).toEqual(['a']);
    expect(p.models.find((m) => m.model === 'b')?.action).toBe('activate');
  });

  it('treats a model the store has never seen as missing everything', () => {
    const p = plan({ commit: C, force: false, desired: [want()], observed: new Map(), remembered: new Map() });
    expect(p.models[0]).toMatchObject({ action: 'fetch', reason: 'install', bytes: 30 });
  });
});
