import { describe, expect, it } from 'vitest';
import { renderFleet, staleSeconds } from './fleet.ts';

describe('status --hub staleness', () => {
  it('counts from when the site last reached the registry, not from the report: it grows after the report', () => {
    const now = Date.parse('2025-03-10T09:07:06.200Z');
    const site = { site: 'alpha', receivedAt: '2025-03-10T09:07:00.000Z', health: 'Ready', commit: 'a'.repeat(40), stalenessSeconds: 0, models: [] };
    // Reported right after its pass (stale 0 then); 6.2 s later it is 6.2 s stale, as `status --store` would say.
    expect(staleSeconds(site, now)).toBeCloseTo(6.2);
    const table = renderFleet([site], now);
    expect(table).toMatch(/^alpha +Ready +a{12} +6\.2 s ago +6 s /m);
    expect(table).not.toMatch(/0 ms/);
    expect(staleSeconds({ ...site, stalenessSeconds: null }, now)).toBeNull();
  });
});
