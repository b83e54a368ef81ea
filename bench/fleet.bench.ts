/**
 * A fleet on one hub: 1,000 simulated agents (MODELSYNC_FLEET_AGENTS) holding
 * the event stream and reporting status, plus 5 real agents
 * (MODELSYNC_FLEET_REAL) running real passes, on one `modelsync serve`; a
 * publisher pushes a new version with stock git. Measured: event fan-out
 * (the hub's publish → each simulated agent), the real agents' push →
 * reported active, the hub's CPU seconds and peak RSS, file descriptors,
 * report throughput in a storm of back-to-back reports, GET /api/v1/sites and
 * the dashboard at fleet size, and failed requests (must be 0: the bench
 * throws otherwise).
 *
 *   npm run bench -- fleet
 *   MODELSYNC_FLEET_AGENTS=2000 MODELSYNC_FLEET_CHILDREN=4 npm run bench -- fleet
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchReport } from './run.ts';
import { quantile, runFleet } from './fleet/driver.ts';

const num = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number, got ${process.env[name]}`);
  return v;
};

export default async function fleetBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  const sims = num('MODELSYNC_FLEET_AGENTS', 1000);
  const real = num('MODELSYNC_FLEET_REAL', 5);
  const children = num('MODELSYNC_FLEET_CHILDREN', 4);
  const stormMs = num('MODELSYNC_FLEET_STORM_S', 10) * 1000;
  try {
    const r = await runFleet({ work, sims, real, children, stormMs, modelBytes: 1 << 20, log: ctx.log });
    if (r.failures.length > 0) throw new Error(`${r.failures.length} failed requests, first: ${r.failures.slice(0, 5).join('; ')}`);
    const f = r.fanoutMs;
    const p = r.fromPushMs;
    const c = r.realConvergeMs;
    const ms = (v: number): string => v.toFixed(0);
    const med = (xs: number[]): number => quantile([...xs].sort((a, b) => a - b), 0.5);
    const note = `${sims} simulated agents in ${children} processes + ${real} real agents, one hub, loopback, one site token per site`;
    return {
      name: `fleet of ${sims + real} agents on one hub`,
      rows: [
        { metric: 'event fan-out (hub publish → simulated agent), p50', value: ms(quantile(f, 0.5)), unit: 'ms', note },
        { metric: 'event fan-out, p99', value: ms(quantile(f, 0.99)), unit: 'ms' },
        { metric: 'event fan-out, worst', value: ms(f[f.length - 1]!), unit: 'ms' },
        { metric: 'git push start → simulated agent has the event, p50 / worst', value: `${ms(quantile(p, 0.5))} / ${ms(p[p.length - 1]!)}`, unit: 'ms', note: 'includes the publisher’s LFS upload and receive-pack' },
        { metric: 'git push start → real agent reports the version active, p50 / worst', value: `${ms(quantile(c, 0.5))} / ${ms(c[c.length - 1]!)}`, unit: 'ms', note: `${real} real agents (Git fetch, 1 MiB LFS download, verify, activate, report) while the fleet reports its passes` },
        { metric: 'git push start → every simulated agent posted Ready', value: ms(r.simPassesDoneMs), unit: 'ms', note: 'each simulated pass: Progressing report, 0.2–1.5 s, Ready report' },
        { metric: 'hub CPU, push to every pass reported', value: r.hub.cpuSeconds.toFixed(2), unit: 's', note: `${2 * sims + 4 * real} reports or so, plus the push and ${real} fetches` },
        { metric: 'report storm: reports accepted', value: r.storm ? (r.storm.reports / r.storm.seconds).toFixed(0) : '-', unit: '/s', note: r.storm ? `every simulated agent posting back to back for ${(stormMs / 1000).toFixed(0)} s; hub CPU ${r.hub.stormCpuSeconds.toFixed(1)} s of ${r.storm.seconds.toFixed(1)} s` : '' },
        { metric: 'report storm: hub CPU per 1,000 reports', value: r.storm ? ((r.hub.stormCpuSeconds / r.storm.reports) * 1000).toFixed(2) : '-', unit: 's', note: 'user + system, from /proc/<pid>/stat (less sensitive to a shared machine than the rate)' },
        { metric: `GET /api/v1/sites (${r.sitesList.count} sites), median`, value: ms(med(r.sitesList.ms)), unit: 'ms', note: `${(r.sitesList.bytes / 1024).toFixed(0)} KiB; hub CPU ${r.sitesList.cpuMs.toFixed(0)} ms per call` },
        { metric: 'GET / (dashboard), median', value: ms(med(r.dashboard.ms)), unit: 'ms', note: `${(r.dashboard.bytes / 1024).toFixed(0)} KiB; hub CPU ${r.dashboard.cpuMs.toFixed(0)} ms per call` },
        { metric: 'hub peak RSS', value: (r.hub.peakRssKiB / 1024).toFixed(0), unit: 'MiB' },
        { metric: 'hub open file descriptors, peak', value: r.hub.peakFds, note: `limit ${r.hub.fdLimit}; ${r.hub.subscribers} event streams at the end` },
        { metric: 'failed requests', value: r.failures.length, note: 'must be 0' },
      ],
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
