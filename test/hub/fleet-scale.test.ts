/**
 * A small fleet on one hub, the same harness as `npm run bench -- fleet`
 * (bench/fleet/driver.ts) at 50 simulated agents and one real agent: the hub
 * is `modelsync serve` in its own process with a site token per site, the
 * simulated agents hold the event stream and report like agents do, the real
 * one runs real passes. No timings are asserted: every agent gets the push's
 * event, the real agent converges, no request fails, and the fleet list
 * holds every site with the right condition and version.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFleet } from '../../bench/fleet/driver.ts';
import { tempDir } from '../helpers/env.ts';
import { openEventStream, startTestHub } from '../helpers/hub.ts';

describe('a fleet on one hub', () => {
  it('50 simulated agents and a real one: all get the event, all report the new version, nothing fails', async () => {
    const r = await runFleet({ work: join(tempDir('modelsync-fleet-'), 'run'), sims: 50, real: 1, children: 1, stormMs: 0, modelBytes: 64 << 10, log: () => {} });
    expect(r.failures).toEqual([]);
    expect(r.fanoutMs).toHaveLength(50);
    expect(r.realConvergeMs).toHaveLength(1);
    // 51 agents and the bench's own observer held a stream each to the end.
    expect(r.hub.subscribers).toBe(52);
    expect(r.sitesList.count).toBe(51);
    expect(r.sitesList.conditions).toEqual({ Ready: 51 });
    for (const s of r.sitesList.body) {
      expect(s.commit, String(s.site)).toBe(r.newCommit);
      expect((s.models as Array<{ model: string; active: string }>).find((m) => m.model === 'model')?.active, String(s.site)).toBe(r.newVersion);
    }
    expect(r.sitesList.body.map((s) => s.site)).toEqual([...Array.from({ length: 50 }, (_, i) => `sim-${String(i).padStart(4, '0')}`), 'real-0'].sort());
  }, 180_000);

  it('a site token shared by a fleet holds a stream per site it lists, past the per-token cap', async () => {
    const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
    const shared = randomBytes(24).toString('base64url');
    const single = randomBytes(24).toString('base64url');
    const sites = Array.from({ length: 4 }, (_, i) => `edge-${i}`);
    const tokensFile = join(tempDir('modelsync-tokens-'), 'tokens.yaml');
    writeFileSync(tokensFile, `tokens:\n  - {name: fleet, sha256: ${sha(shared)}, role: site, sites: [${sites.join(', ')}]}\n  - {name: solo, sha256: ${sha(single)}, role: site}\n`);
    const th = await startTestHub({ tokensFile, limits: { eventSubscribersPerToken: 3 } });
    const streams = [];
    try {
      // Four sites, two streams each (an agent and its restarting successor): 8 streams, more than the cap of 3.
      for (let i = 0; i < 8; i++) {
        const s = await openEventStream(`${th.url}/api/v1/events`, th.auth(shared));
        streams.push(s);
        expect(s.status).toBe(200);
      }
      const ninth = await openEventStream(`${th.url}/api/v1/events`, th.auth(shared));
      streams.push(ninth);
      expect(ninth.status).toBe(503);
      // A token of one site keeps the plain cap.
      for (let i = 0; i < 3; i++) {
        const s = await openEventStream(`${th.url}/api/v1/events`, th.auth(single));
        streams.push(s);
        expect(s.status).toBe(200);
      }
      const fourth = await openEventStream(`${th.url}/api/v1/events`, th.auth(single));
      streams.push(fourth);
      expect(fourth.status).toBe(503);
    } finally {
      for (const s of streams) s.close();
      await th.close();
    }
  });
});
