/**
 * Over a slow WAN link: a network namespace whose loopback is shaped with
 * `tbf` to 20 Mbit/s each way (MTU 1500), and a delay proxy adding 100 ms of
 * round trip between the site and the hub (bench/wan/netns.ts and
 * delay-proxy.ts say exactly what is modelled). Inside it, bench/wan/driver.ts
 * runs the hub, the proxy and the site, and measures:
 *
 *   1. full fetch of a new model: `modelsync reconcile` against curl of the
 *      same object through the same link, and against the link rate;
 *   2. a delta upgrade (1 MiB changed in the middle): bytes and time;
 *   3. the link dropping mid-transfer for some seconds, two ways: connections
 *      lost (the uplink came back with new NAT state) and connections kept
 *      (a plain blackout); bytes fetched beyond the object, and the time from
 *      link-up until the download resumes and the version is active;
 *   4. push-to-active: stock `git push` next to the hub until the agent behind
 *      the link runs the version (and the hub has its report).
 *
 *   npm run bench -- wan
 *   MODELSYNC_WAN_SIZE_MB=64 MODELSYNC_WAN_RATE_MBIT=20 MODELSYNC_WAN_RTT_MS=100 \
 *   MODELSYNC_WAN_DROP_S=10 npm run bench -- wan
 *   MODELSYNC_WAN_SCENARIOS=drop MODELSYNC_WAN_DROP_S=45 npm run bench -- wan   # one part only
 *
 * Needs root and iproute2 (tc with htb, tbf and u32); elsewhere it reports why
 * it was skipped. The namespace, its qdiscs and every process in it are
 * removed afterwards, and a namespace left by a run that died is swept first.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchReport, BenchRow } from './run.ts';
import { MiB, ROOT } from './common.ts';
import type { DriverConfig, WanResult } from './wan/driver.ts';
import { create, destroy, netnsProblem, sweepStale, type LinkModel } from './wan/netns.ts';

const num = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};

export default async function wanBench(ctx: BenchContext): Promise<BenchReport> {
  const name = 'over a slow WAN link (tbf + delay proxy in a network namespace)';
  const problem = netnsProblem();
  if (problem) return { name, rows: [{ metric: 'skipped', value: problem }] };
  const link: LinkModel = { rateMbit: num('MODELSYNC_WAN_RATE_MBIT', 20), burstBytes: 32 << 10, latencyMs: 50, rttMs: num('MODELSYNC_WAN_RTT_MS', 100) };
  const cfg: DriverConfig = {
    work: join(ctx.workDir, 'run'),
    sizeMb: num('MODELSYNC_WAN_SIZE_MB', 64),
    link,
    dropSeconds: num('MODELSYNC_WAN_DROP_S', 10),
    dropAt: 0.4,
    pushRounds: 3,
    scenarios: (process.env.MODELSYNC_WAN_SCENARIOS ?? 'full,delta,drop,push').split(',').map((x) => x.trim()),
  };
  sweepStale(ctx.log);
  const ns = create(ctx.log, link);
  let result: WanResult;
  try {
    result = await runDriver(ns, cfg, ctx.log);
  } finally {
    destroy(ns);
    // Keep the logs (bench/.work/wan/run/logs) for a look afterwards; the models and stores go.
    for (const e of existsSync(cfg.work) ? readdirSync(cfg.work) : []) if (e !== 'logs') rmSync(join(cfg.work, e), { recursive: true, force: true });
  }
  return { name, rows: rows(result, cfg) };
}

function runDriver(ns: string, cfg: DriverConfig, log: (l: string) => void): Promise<WanResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(ROOT, 'bench/wan/driver.ts'), JSON.stringify(cfg)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      for (let i = err.indexOf('\n'); i >= 0; i = err.indexOf('\n')) {
        log(err.slice(0, i));
        err = err.slice(i + 1);
      }
    });
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      if (code === 0 && last.startsWith('{')) resolve(JSON.parse(last) as WanResult);
      else reject(new Error(`the WAN driver failed (${code}); logs in ${join(cfg.work, 'logs')}`));
    });
  });
}

function rows(r: WanResult, cfg: DriverConfig): BenchRow[] {
  const rate = r.linkBytesPerS;
  const pct = (bytes: number, s: number): string => `${((bytes / s / rate) * 100).toFixed(1)} % of the link`;
  const mbps = (bytes: number, s: number): string => `${((bytes * 8) / s / 1e6).toFixed(2)} Mbit/s`;
  const size = cfg.sizeMb * MiB;
  const link = `${cfg.link.rateMbit} Mbit/s, ${cfg.link.rttMs} ms RTT`;
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const out: BenchRow[] = [];
  const f = r.full;
  if (f) {
    out.push(
      { metric: `curl, one ${cfg.sizeMb} MiB LFS object over ${link}`, value: f.curlS.toFixed(2), unit: 's', note: `${mbps(size, f.curlS)}, ${pct(size, f.curlS)} (at most 95.6 % is payload at MTU 1500)` },
      { metric: `modelsync reconcile, new ${cfg.sizeMb} MiB model: the fetch-objects step (batch, download, sha256)`, value: f.fetchStepS.toFixed(2), unit: 's', note: `${mbps(size, f.fetchStepS)}, ${pct(size, f.fetchStepS)}; target ≥ 90 %; ratio to curl ${(f.fetchStepS / f.curlS).toFixed(3)}` },
      { metric: '  … the whole `modelsync reconcile` process (start, registry clone, validate, fetch, activate, exit)', value: f.reconcileS.toFixed(2), unit: 's', note: `${pct(size, f.reconcileS)}; ratio to curl ${(f.reconcileS / f.curlS).toFixed(3)}; registry clone ${f.registryStepS.toFixed(2)} s; \`modelsync --version\` alone ${f.startupS.toFixed(2)} s` },
      { metric: '  … the same, precompiled (esbuild bundle of src/cli.ts, as dist/ installs)', value: f.bundleS.toFixed(2), unit: 's', note: `${pct(size, f.bundleS)}; ratio to curl ${(f.bundleS / f.curlS).toFixed(3)}` },
      { metric: '  … wire bytes down the link for that pass', value: (f.wireDown / MiB).toFixed(2), unit: 'MiB', note: 'tbf counter: payload plus TCP/IP headers, Git and batch traffic' },
    );
  }
  if (r.delta && f) {
    const d = r.delta;
    out.push({ metric: `delta upgrade (${(d.changedBytes / MiB).toFixed(0)} MiB of ${cfg.sizeMb} MiB changed), whole process`, value: d.reconcileS.toFixed(2), unit: 's', note: `${(d.bytesFetched / MiB).toFixed(2)} MiB fetched (chunk index included), ${(d.wireDown / MiB).toFixed(2)} MiB on the wire; ${(d.reconcileS / f.reconcileS).toFixed(3)} of the full fetch's time` });
  }
  if (r.curlDrop) {
    const c = r.curlDrop;
    out.push({ metric: `curl, link blacked out ${cfg.dropSeconds} s at ${Math.round(cfg.dropAt * 100)} %: link-up → resumed / → done`, value: `${c.resumeAfterUpS.toFixed(1)} / ${c.doneAfterUpS.toFixed(1)}`, unit: 's', note: `the rest alone takes ${c.idealRestS.toFixed(1)} s at the link rate; the drop is at the sender's own qdisc, so TCP retries every 0.5 s instead of backing off (bench/wan/netns.ts)` });
  }
  for (const d of r.drops) {
    const extra = d.bytesFetched - d.objectBytes;
    const what = d.mode === 'lost' ? 'connections silently lost (new NAT state)' : 'connections kept (blackout)';
    out.push(
      { metric: `agent, link down ${d.downSeconds.toFixed(1)} s at ${(d.atDropBytes / MiB).toFixed(1)} MiB, ${what}: bytes fetched beyond the object`, value: extra, unit: 'B', note: `${(extra / MiB).toFixed(3)} MiB; target < 1 MiB; ${d.retries} LFS retries, ${d.failedPasses} failed passes; ${(d.wireDown / MiB).toFixed(2)} MiB down the wire in all` },
      { metric: '  … link-up → bytes flow again / → version active', value: `${d.resumeAfterUpS.toFixed(1)} / ${d.activeAfterUpS.toFixed(1)}`, unit: 's', note: `the rest of the object alone takes about ${d.idealRestS.toFixed(1)} s at the link rate; ${d.gaveUpAfterUpS === null ? 'the connection it had carried on' : `the client gave up on its connection and resumed with a Range request ${d.gaveUpAfterUpS.toFixed(1)} s after link-up`}` },
    );
  }
  const p = r.push;
  if (p && p.fromPushMs.length > 0) {
    out.push(
      { metric: `push-to-active, agent behind ${link}, 1 MiB model: git push start → active (median of ${p.fromPushMs.length})`, value: median(p.fromPushMs).toFixed(0), unit: 'ms', note: `all: ${p.fromPushMs.map((x) => x.toFixed(0)).join(', ')} ms; the publisher's push is next to the hub, not over the link` },
      { metric: '  … git push done → active (median)', value: median(p.fromPushDoneMs).toFixed(0), unit: 'ms', note: `the file alone is ${((p.bytes / rate) * 1000).toFixed(0)} ms at the link rate, plus round trips: event, ref advertisement, fetch, batch, GET` },
      { metric: '  … git push start → the hub has the agent\'s report (median)', value: median(p.hubSeesMs).toFixed(0), unit: 'ms' },
    );
  }
  return out;
}
