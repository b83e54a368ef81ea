/**
 * The hub's memory with a big fleet and a long day: 10,000 sites reporting
 * every minute for 24 simulated hours against the status store itself (disk
 * writes replaced by a no-op, the clock moved by hand). What it keeps is one
 * record per site and at most historySize transitions, however long it runs.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../log.ts';
import { SitesStatus } from './sites-status.ts';

// A heap sample means something only after a full collection: expose gc() to this test alone.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const SITES = 10_000;
// A whole day (1440) takes minutes on a shared CI core; the suite runs two hours, enough to see the
// plateau (90 minutes, sampled every 30), and MODELSYNC_FLEET_MINUTES=1440 runs the day (docs/hub.md has that run's numbers).
const MINUTES = Number(process.env.MODELSYNC_FLEET_MINUTES ?? 90);

function report(i: number, minute: number): Record<string, unknown> {
  // Every 50th site flaps between Ready and Degraded each hour: a steady stream of transitions.
  const degraded = i % 50 === 0 && Math.floor(minute / 60) % 2 === 1;
  return {
    site: `site-${i}`,
    health: degraded ? 'Degraded' : 'Ready',
    phase: 'idle',
    schedule: '* * * * *',
    staleAfterSeconds: 300,
    commit: 'a'.repeat(40),
    conditions: degraded ? [{ type: 'Degraded', status: true, reason: 'HealthCheckFailed', message: `face ${minute}: exit 1` }] : [],
    lastPass: { status: degraded ? 'degraded' : 'in-sync', degraded: degraded ? [{ model: 'face', version: '2' }] : [], conflicts: [] },
    models: [
      { model: 'face', declared: '2', desired: '2', active: degraded ? '1' : '2', outcome: 'none', reason: '', detail: '' },
      { model: 'ssd', declared: '7', desired: '7', active: '7', outcome: 'none', reason: '', detail: '' },
    ],
  };
}

describe('SitesStatus at fleet scale', () => {
  it(`keeps memory bounded: ${SITES} sites reporting every minute for ${MINUTES} simulated minutes`, async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const s = new SitesStatus('/nonexistent', silentLogger, { now: () => new Date(now), historySize: 500, persist: async () => {} });
    let transitions = 0;
    s.on('transition', () => (transitions += 1));
    const heap: number[] = [];
    const started = Date.now();
    for (let minute = 0; minute < MINUTES; minute++) {
      const puts: Array<Promise<unknown>> = [];
      for (let i = 0; i < SITES; i++) puts.push(s.put(`site-${i}`, report(i, minute)));
      await Promise.all(puts);
      if (minute % 30 === 0) s.sweep();
      now += 60_000;
      if (minute % 30 === 29) {
        gc();
        heap.push(process.memoryUsage().heapUsed);
      }
    }
    const secs = (Date.now() - started) / 1000;
    expect(s.size).toBe(SITES);
    expect(s.transitions()).toHaveLength(500);
    // 200 flapping sites, a change each simulated hour, plus every site's first report.
    expect(transitions).toBeGreaterThanOrEqual(SITES + 200 * (Math.floor(MINUTES / 60) - 1));
    const mb = heap.map((h) => Math.round(h / 2 ** 20));
    console.log(`${SITES} sites × ${MINUTES} reports in ${secs.toFixed(0)} s: heap every 30 min ${mb.join(', ')} MiB; ${transitions} transitions, ${s.transitions().length} kept`);
    // Bounded: the last samples are no bigger than the first plus noise (nothing grows with the day).
    if (mb.length >= 3) expect(Math.max(...mb.slice(1))).toBeLessThan(mb[0]! * 1.5 + 32);
    // And the whole store stays small in absolute terms: about 5 KiB per site here, with headroom for GC timing.
    expect(Math.max(...mb)).toBeLessThan(400);
  }, Math.max(120_000, MINUTES * 1500));
});
