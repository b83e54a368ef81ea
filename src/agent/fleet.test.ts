import { createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fetchFleet, renderFleet, staleSeconds } from './fleet.ts';

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

describe('status --hub notes and errors', () => {
  it('shows a break-glass pin, which counts as in sync with what the site was told', () => {
    const site = {
      site: 'alpha', receivedAt: new Date().toISOString(), health: 'Ready', commit: 'b'.repeat(40), stalenessSeconds: 0,
      models: [
        { model: 'face', declared: '2026-02-01', desired: '2026-01-10', active: '2026-01-10', drift: 'pinned to 2026-01-10 on this site (registry declares 2026-02-01)' },
        { model: 'ssd', declared: '1', desired: '1', active: '1' },
      ],
    };
    const table = renderFleet([site]);
    expect(table).toContain('2/2 in sync');
    expect(table).toContain('pinned face 2026-01-10 (declared 2026-02-01)');
  });

  it("shows the hub's Stale for a site gone silent, and a service that names a model the site does not run", () => {
    const site = {
      site: 'beta', receivedAt: new Date(Date.now() - 3_600_000).toISOString(), health: 'Ready', commit: 'c'.repeat(40), stalenessSeconds: 0,
      condition: 'Stale', conditionReason: 'no report for 1 h (3 × its 15 min schedule)',
      serviceProblems: [{ service: 'sentinel', model: 'face_recogniton', message: 'x' }],
      models: [{ model: 'face', declared: '1', desired: '1', active: '1' }],
    };
    const table = renderFleet([site]);
    expect(table).toMatch(/^beta +Stale /m);
    expect(table).toContain('no report for 1 h (3 × its 15 min schedule)');
    expect(table).toContain('service sentinel names face_recogniton, which this site does not run');
    // Without the hub's condition the agent's own word stands.
    expect(renderFleet([{ ...site, condition: undefined, serviceProblems: undefined }])).toMatch(/^beta +Ready /m);
  });

  it('says no token was given, or that a token lacks the role, rather than "refused"', async () => {
    const answer = (status: number) => (async () => new Response('{}', { status })) as unknown as typeof fetch;
    await expect(fetchFleet('http://hub.test', undefined, answer(401))).rejects.toThrow('the hub needs a token (HTTP 401) and none was given');
    await expect(fetchFleet('http://hub.test', 'tok', answer(401))).rejects.toThrow('the hub refused the token (HTTP 401)');
    await expect(fetchFleet('http://hub.test', 'tok', answer(403))).rejects.toThrow('its role may not list the fleet');
  });

  it('names why the hub cannot be reached (fetch only says "fetch failed")', async () => {
    const closed = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const port = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(port));
      });
    });
    await expect(fetchFleet(`http://127.0.0.1:${closed}`, undefined)).rejects.toThrow(/fetch failed \(ECONNREFUSED\)/);
  });
});
