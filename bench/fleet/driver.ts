/**
 * One hub, a fleet of agents, one push: used by `npm run bench -- fleet`
 * (1,000 simulated agents) and by test/hub/fleet-scale.test.ts (50).
 *
 * - The hub is `modelsync serve` in its own process with a tokens file: one
 *   site token per site (what a real fleet should do: a stolen token reports
 *   only for its site and is revoked alone), a publisher and an admin.
 * - Simulated agents (bench/fleet/sims.ts) run in a few child processes.
 * - A sample of real agents (`modelsync agent`, each its own process) run
 *   real passes: Git fetch, LFS download, verify, activate, report.
 * - Every request any of them makes is checked: failures are counted and the
 *   caller decides (the bench and the test both demand 0).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, benchGitEnv, makeFile, manifestYaml, run, startHub, type HubProcess } from '../common.ts';

export interface FleetOptions {
  work: string;
  /** Simulated agents. */
  sims: number;
  /** Real `modelsync agent` processes. */
  real: number;
  /** Child processes the simulated agents are spread over. */
  children: number;
  /** Milliseconds of back-to-back reporting by every simulated agent (0: skip the storm). */
  stormMs: number;
  /** Size of the model file each version publishes. */
  modelBytes: number;
  log(line: string): void;
}

export interface FleetResult {
  sims: number;
  real: number;
  /** ms from the observer's receipt of the ref event (≈ the hub's publish) to each simulated agent's. */
  fanoutMs: number[];
  /** ms from `git push` start to each simulated agent's receipt. */
  fromPushMs: number[];
  /** ms from `git push` start to each real agent's report of the new version active and Ready. */
  realConvergeMs: number[];
  /** ms from `git push` start until every simulated agent had posted its Ready report. */
  simPassesDoneMs: number;
  failures: string[];
  /** GET /api/v1/sites as admin (all sites): client-side times, the hub's CPU per call, size. */
  sitesList: { ms: number[]; cpuMs: number; bytes: number; count: number; conditions: Record<string, number>; body: Array<Record<string, unknown>> };
  dashboard: { ms: number[]; cpuMs: number; bytes: number };
  storm: { reports: number; seconds: number } | null;
  hub: { peakRssKiB: number; cpuSeconds: number; stormCpuSeconds: number; peakFds: number; fdLimit: number; subscribers: number };
  newCommit: string;
  newVersion: string;
}

const here = fileURLToPath(new URL('.', import.meta.url));
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

function procCpuSeconds(pid: number): number {
  // Fields 14 and 15 of /proc/<pid>/stat: utime and stime in clock ticks (100 per second on Linux).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function procPeakRssKiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
}

function procFdLimit(pid: number): number {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line?.split(/\s+/)[3] ?? NaN);
}

interface Sim {
  site: string;
  token: string;
}

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  mkdirSync(o.work, { recursive: true });
  const env = benchGitEnv(join(o.work, 'home'));
  const failures: string[] = [];
  const mk = (): string => randomBytes(24).toString('base64url');
  const publisher = mk();
  const admin = mk();
  const sims: Sim[] = Array.from({ length: o.sims }, (_, i) => ({ site: `sim-${String(i).padStart(4, '0')}`, token: mk() }));
  const reals: Sim[] = Array.from({ length: o.real }, (_, i) => ({ site: `real-${i}`, token: mk() }));
  const tokensFile = join(o.work, 'tokens.yaml');
  writeFileSync(tokensFile, [
    'tokens:',
    `  - {name: ci, sha256: ${sha256(publisher)}, role: publisher}`,
    `  - {name: ops, sha256: ${sha256(admin)}, role: admin}`,
    ...[...sims, ...reals].map((s) => `  - {name: ${s.site}, sha256: ${sha256(s.token)}, role: site}`),
    '',
  ].join('\n'));

  const children: ChildProcess[] = [];
  const agents: ChildProcess[] = [];
  let hub: HubProcess | undefined;
  const stopAll = async (): Promise<void> => {
    for (const c of children) {
      if (c.connected) c.send({ type: 'stop' });
    }
    await Promise.all(children.map((c) => (c.exitCode !== null ? undefined : new Promise<void>((r) => {
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      c.once('exit', () => (clearTimeout(t), r()));
    }))));
    await Promise.all(agents.map((a) => (a.exitCode !== null ? undefined : new Promise<void>((r) => {
      const t = setTimeout(() => a.kill('SIGKILL'), 10_000);
      a.once('exit', () => (clearTimeout(t), r()));
      a.kill('SIGTERM');
    }))));
    await hub?.stop();
  };

  try {
    hub = await startHub(join(o.work, 'hub'), tokensFile);
    const hubPid = hub.child.pid!;
    const base = hub.url;
    const host = new URL(base).host;
    const api = async (path: string, token: string): Promise<{ ms: number; text: string; status: number }> => {
      const t = performance.now();
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      if (res.status !== 200) failures.push(`GET ${path}: HTTP ${res.status}`);
      return { ms: performance.now() - t, text, status: res.status };
    };
    let peakFds = 0;
    const fdTimer = setInterval(() => {
      try {
        peakFds = Math.max(peakFds, readdirSync(`/proc/${hubPid}/fd`).length);
      } catch {
        /* exited */
      }
    }, 250);

    // The registry: one model, a new 1 MiB version per push, a site file per real agent.
    const pub = join(o.work, 'publisher');
    mkdirSync(pub);
    run('git', ['init', '-q', '-b', 'main'], { cwd: pub, env });
    run('git', ['lfs', 'install', '--local'], { cwd: pub, env });
    writeFileSync(join(pub, '.gitattributes'), 'registry/** filter=lfs diff=lfs merge=lfs -text\nregistry/**/*.yaml !filter !diff !merge text\n');
    mkdirSync(join(pub, 'sites'));
    for (const r of reals) writeFileSync(join(pub, `sites/${r.site}.yaml`), 'retention: {keep: 1}\n');
    const publish = async (version: number): Promise<string> => {
      const dir = join(pub, 'registry/model', String(version));
      const sum = await makeFile(join(dir, 'model.bin'), o.modelBytes, version);
      writeFileSync(join(dir, 'manifest.yaml'), manifestYaml('model', String(version), [{ name: 'model.bin', sha256: sum, size: o.modelBytes }]));
      writeFileSync(join(pub, 'registry/model_registry.yaml'), `models:\n  model: {current_version: "${version}"}\n`);
      run('git', ['add', '-A'], { cwd: pub, env });
      run('git', ['commit', '-q', '-m', `model ${version}`], { cwd: pub, env });
      return run('git', ['rev-parse', 'HEAD'], { cwd: pub, env }).trim();
    };
    const pushUrl = `http://ci:${publisher}@${host}/registry.git`;
    const firstCommit = await publish(1);
    run('git', ['push', '-q', pushUrl, 'main'], { cwd: pub, env });

    // Real agents, each its own `modelsync agent` process.
    for (const r of reals) {
      const dir = join(o.work, r.site);
      mkdirSync(dir);
      writeFileSync(join(dir, 'token'), `${r.token}\n`, { mode: 0o600 });
      writeFileSync(join(dir, 'agent.yaml'), `site: ${r.site}\nregistry: ${base}/registry.git\nhub: ${base}\ntoken_file: token\nstore: store\njitter_s: 0\nverify_interval_s: 0\ntemplates: false\n`);
      const a = spawn(process.execPath, [CLI, 'agent', '--config', 'agent.yaml', '--log-level', 'warn'], { cwd: dir, env: { ...env, MODELSYNC_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      a.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
      a.once('exit', (code, signal) => {
        if (signal !== 'SIGTERM' && code !== 0) failures.push(`agent ${r.site} exited (${code ?? signal}): ${err}`);
      });
      agents.push(a);
    }
    const realReport = async (r: Sim): Promise<Record<string, unknown> | undefined> => {
      const res = await fetch(`${base}/api/v1/sites`, { headers: { authorization: `Bearer ${r.token}` } });
      const body = (await res.json()) as { sites: Array<Record<string, unknown>> };
      return body.sites.find((s) => s.site === r.site);
    };
    const runs = (rep: Record<string, unknown> | undefined, version: string): boolean =>
      rep?.health === 'Ready' && Array.isArray(rep.models) && (rep.models as Array<{ model: string; active: unknown }>).some((m) => m.model === 'model' && m.active === version);
    await Promise.all(reals.map((r) => waitFor(`${r.site} to run version 1`, 120_000, async () => (runs(await realReport(r), '1') ? true : undefined))));
    o.log(`${reals.length} real agents run version 1`);

    // The observer subscribes before the simulated agents, so the hub writes to it first: its receipt is the hub's publish, plus one loopback hop.
    let eventAt = 0;
    const observer = new AbortController();
    void (async () => {
      const res = await fetch(`${base}/api/v1/events?repo=registry`, { headers: { authorization: `Bearer ${admin}` }, signal: observer.signal });
      const dec = new TextDecoder();
      for await (const chunk of res.body!) {
        if (eventAt === 0 && dec.decode(chunk as Uint8Array, { stream: true }).includes('event: ref')) eventAt = performance.timeOrigin + performance.now();
      }
    })().catch(() => {});

    // Simulated agents.
    const per = Math.ceil(sims.length / o.children);
    const got = new Map<string, number[]>();
    const passedChildren = new Map<string, number>();
    let connected = 0;
    let reported = 0;
    let stormed = 0;
    let stormCount = 0;
    for (let c = 0; c * per < sims.length; c++) {
      const specFile = join(o.work, `sims-${c}.json`);
      writeFileSync(specFile, JSON.stringify({ hub: base, repo: 'registry', sims: sims.slice(c * per, (c + 1) * per), passMinMs: 200, passMaxMs: 1500, commit: firstCommit }));
      const child = fork(join(here, 'sims.ts'), [specFile], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (m: { type: string; after?: string; times?: number[]; what?: string; count?: number }) => {
        if (m.type === 'connected') connected += 1;
        else if (m.type === 'reported') reported += 1;
        else if (m.type === 'stormed') (stormed += 1, (stormCount += m.count!));
        else if (m.type === 'failure') failures.push(m.what!);
        else if (m.type === 'got') got.set(m.after!, [...(got.get(m.after!) ?? []), ...m.times!]);
        else if (m.type === 'passed') passedChildren.set(m.after!, (passedChildren.get(m.after!) ?? 0) + 1);
      });
      child.once('exit', (code) => {
        if (code !== 0 && code !== null) failures.push(`simulated agents ${c} exited with ${code}`);
      });
      children.push(child);
    }
    await waitFor('every simulated agent to subscribe', 120_000, () => (connected === children.length ? true : undefined));
    o.log(`${sims.length} simulated agents subscribed in ${children.length} processes`);
    for (const c of children) c.send({ type: 'report' });
    await waitFor('every simulated agent to report', 120_000, () => (reported === children.length ? true : undefined));
    o.log('every simulated agent reported once');

    // The fleet list and the dashboard at full size.
    // CPU is read around each batch of calls too: the machine may be shared, the hub's own CPU time is less noisy than wall time.
    const listMs: number[] = [];
    let list = await api('/api/v1/sites', admin);
    let cpu0 = procCpuSeconds(hubPid);
    for (let i = 0; i < 10; i++) {
      list = await api('/api/v1/sites', admin);
      listMs.push(list.ms);
    }
    const listCpuMs = ((procCpuSeconds(hubPid) - cpu0) * 1000) / 10;
    const dashMs: number[] = [];
    let dash = await api('/', admin);
    cpu0 = procCpuSeconds(hubPid);
    for (let i = 0; i < 5; i++) {
      dash = await api('/', admin);
      dashMs.push(dash.ms);
    }
    const dashCpuMs = ((procCpuSeconds(hubPid) - cpu0) * 1000) / 5;

    // The push.
    const version = '2';
    const newCommit = await publish(2);
    const cpuBefore = procCpuSeconds(hubPid);
    const pushStart = performance.timeOrigin + performance.now();
    const pushing = new Promise<void>((resolve, reject) => {
      const g = spawn('git', ['push', '-q', pushUrl, 'main'], { cwd: pub, env, stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      g.stderr.on('data', (d: Buffer) => (err += d.toString()));
      g.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git push failed: ${err}`))));
    });
    const realConvergeMs: number[] = [];
    const realDone = Promise.all(reals.map(async (r) => {
      await waitFor(`${r.site} to report version ${version}`, 120_000, async () => (runs(await realReport(r), version) ? true : undefined));
      realConvergeMs.push(performance.timeOrigin + performance.now() - pushStart);
    }));
    await pushing;
    const times = await waitFor('every simulated agent to get the event', 60_000, () => ((got.get(newCommit)?.length ?? 0) === sims.length ? got.get(newCommit) : undefined));
    if (eventAt === 0) throw new Error('the observer saw no ref event');
    await waitFor('every simulated agent to finish its pass', 60_000, () => (passedChildren.get(newCommit) === children.length ? true : undefined));
    const simPassesDoneMs = performance.timeOrigin + performance.now() - pushStart;
    await realDone;
    o.log(`every agent got the event; real agents converged; simulated passes done ${simPassesDoneMs.toFixed(0)} ms after the push`);
    const cpuPush = procCpuSeconds(hubPid) - cpuBefore;

    // The fleet list after the push, for the caller's checks.
    const after = await api('/api/v1/sites', admin);
    const body = (JSON.parse(after.text) as { sites: Array<Record<string, unknown>> }).sites;
    const conditions: Record<string, number> = {};
    for (const s of body) conditions[String(s.condition)] = (conditions[String(s.condition)] ?? 0) + 1;

    let storm: FleetResult['storm'] = null;
    let stormCpu = 0;
    if (o.stormMs > 0) {
      const c0 = procCpuSeconds(hubPid);
      const t0 = performance.now();
      for (const c of children) c.send({ type: 'storm', ms: o.stormMs });
      await waitFor('the report storm to end', o.stormMs + 60_000, () => (stormed === children.length ? true : undefined));
      storm = { reports: stormCount, seconds: (performance.now() - t0) / 1000 };
      stormCpu = procCpuSeconds(hubPid) - c0;
      o.log(`storm: ${stormCount} reports in ${storm.seconds.toFixed(1)} s`);
    }
    const metrics = await api('/metrics', admin);
    const subscribers = Number(/^modelsync_hub_event_subscribers (\d+)/m.exec(metrics.text)?.[1] ?? NaN);
    clearInterval(fdTimer);
    const hubStats = { peakRssKiB: procPeakRssKiB(hubPid), cpuSeconds: cpuPush, stormCpuSeconds: stormCpu, peakFds, fdLimit: procFdLimit(hubPid), subscribers };
    observer.abort();
    return {
      sims: sims.length,
      real: reals.length,
      fanoutMs: times.map((t) => t - eventAt).sort((a, b) => a - b),
      fromPushMs: times.map((t) => t - pushStart).sort((a, b) => a - b),
      realConvergeMs: realConvergeMs.sort((a, b) => a - b),
      simPassesDoneMs,
      failures,
      sitesList: { ms: listMs, cpuMs: listCpuMs, bytes: Buffer.byteLength(list.text), count: body.length, conditions, body },
      dashboard: { ms: dashMs, cpuMs: dashCpuMs, bytes: Buffer.byteLength(dash.text) },
      storm,
      hub: hubStats,
      newCommit,
      newVersion: version,
    };
  } finally {
    await stopAll();
  }
}

export function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}
