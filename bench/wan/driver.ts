/**
 * The WAN scenarios, run inside the namespace that wan.bench.ts made
 * (`ip netns exec <ns> node --import tsx bench/wan/driver.ts '<json>'`).
 * Prints one JSON document (WanResult) as its last stdout line; progress
 * goes to stderr. See netns.ts for the link and delay-proxy.ts for latency.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, MiB, ROOT, benchGitEnv, makeFile, measure, run } from '../common.ts';
import { linkCounters, setLink, type LinkModel } from './netns.ts';
import { startAgent, startHub, startProxy, stop, stopAll, type ProxyProcess } from './procs.ts';

export interface DriverConfig {
  work: string;
  sizeMb: number;
  link: LinkModel;
  dropSeconds: number;
  /** Drop when this fraction of the object is on the site. */
  dropAt: number;
  pushRounds: number;
  /** Which of full, delta, drop, push to run. */
  scenarios: string[];
}

export interface DropResult {
  mode: 'lost' | 'blackout';
  objectBytes: number;
  bytesFetched: number;
  /** Bytes down the link over the whole scenario (headers, Git, batch, events included). */
  wireDown: number;
  /** Bytes down the link (payload and headers) when it dropped. */
  atDropBytes: number;
  downSeconds: number;
  /** From link-up until new bytes reach the .part again, and until the version is active. */
  resumeAfterUpS: number;
  activeAfterUpS: number;
  /** Link-up until the client dropped the connection it had and retried (null: it never had to). */
  gaveUpAfterUpS: number | null;
  /** What the rest of the object takes at the link rate: the floor for activeAfterUpS. */
  idealRestS: number;
  retries: number;
  failedPasses: number;
}

export interface WanResult {
  linkBytesPerS: number;
  full?: { curlS: number; curlBytes: number; reconcileS: number; bundleS: number; startupS: number; fetchStepS: number; registryStepS: number; bytes: number; wireDown: number };
  delta?: { reconcileS: number; bytesFetched: number; changedBytes: number; wireDown: number };
  drops: DropResult[];
  curlDrop?: { resumeAfterUpS: number; doneAfterUpS: number; idealRestS: number };
  push?: { fromPushMs: number[]; fromPushDoneMs: number[]; hubSeesMs: number[]; bytes: number };
}

const cfg = JSON.parse(process.argv[2]!) as DriverConfig;
const log = (l: string): void => void process.stderr.write(`${l}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const linkBytesPerS = (cfg.link.rateMbit * 1e6) / 8;

function readCurrent(store: string, model: string): string | undefined {
  try {
    return readlinkSync(join(store, 'models', model, 'current'));
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>, every = 20): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** Bytes of the one `.part` under the store's downloads dir (0 when there is none). */
function partBytes(store: string): number {
  const dir = join(store, 'tmp', 'downloads');
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.part')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

async function main(): Promise<WanResult> {
  const work = cfg.work;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const logs = join(work, 'logs');
  mkdirSync(logs);
  const env = { ...benchGitEnv(join(work, 'home')), MODELSYNC_NO_AUTOPUSH: '1' };
  const hub = await startHub(join(work, 'hub'), logs);
  const proxy = await startProxy(cfg.link.rttMs);
  const site = `${proxy.url}/registry.git`;

  // ---- the publisher sits next to the hub (pushes do not cross the site's link)
  const reg = join(work, 'reg');
  run(process.execPath, [CLI, 'init', reg, '--bare-example'], { cwd: work, env });
  run('git', ['remote', 'add', 'origin', `${hub.url}/registry.git`], { cwd: reg, env });
  writeFileSync(join(reg, 'sites/edge.yaml'), 'retention: {keep: 3}\n');
  const size = cfg.sizeMb * MiB;
  const v1 = join(work, 'v1', 'model.bin');
  await makeFile(v1, size, 1);
  const publish = (model: string, version: string, file: string): void => void run(process.execPath, [CLI, 'publish', model, version, file], { cwd: reg, env });
  log(`publishing big 2026-01-01 (${cfg.sizeMb} MiB) and pushing it to the hub`);
  publish('big', '2026-01-01', v1);
  run('git', ['add', 'sites/edge.yaml'], { cwd: reg, env });
  run('git', ['commit', '-q', '-m', 'site edge'], { cwd: reg, env });
  run('git', ['push', '-q', 'origin', 'main'], { cwd: reg, env });
  const oid = /oid sha256:([0-9a-f]{64})/.exec(run('git', ['show', 'HEAD:registry/big/2026-01-01/model.bin'], { cwd: reg, env }))![1]!;

  const want = (x: string): boolean => cfg.scenarios.includes(x);
  const store1 = join(work, 'store1');
  const full = want('full') || want('delta') ? await fullScenario(site, oid, size, store1) : undefined;

  // v2 = v1 with 1 MiB in the middle replaced (the delta's target, and what the agents fetch whole below)
  const v2 = join(work, 'v2', 'model.bin');
  mkdirSync(join(work, 'v2'));
  copyFileSync(v1, v2);
  const changed = Math.min(MiB, Math.floor(size / 4));
  const fd = openSync(v2, 'r+');
  writeSync(fd, randomFillSync(Buffer.alloc(changed)), 0, changed, Math.floor(size / 2));
  closeSync(fd);
  log('publishing big 2026-01-02 (1 MiB changed in the middle)');
  publish('big', '2026-01-02', v2);
  run('git', ['push', '-q', 'origin', 'main'], { cwd: reg, env });
  const oid2 = /oid sha256:([0-9a-f]{64})/.exec(run('git', ['show', 'HEAD:registry/big/2026-01-02/model.bin'], { cwd: reg, env }))![1]!;

  // ---- 2. delta: the site holding v1 upgrades
  let delta: WanResult['delta'];
  if (want('delta')) {
    const wire1 = linkCounters(undefined).down.sent;
    const d = await measure(process.execPath, [CLI, 'reconcile', '--site', 'edge', '--registry', site, '--store', store1, '--json'], { cwd: work, env });
    if (d.status !== 0) throw new Error(`delta reconcile failed (${d.status}): ${d.stdout}${d.stderr}`);
    const r2 = JSON.parse(d.stdout) as { bytesFetched: number };
    if (readCurrent(store1, 'big') !== '2026-01-02') throw new Error('the delta pass did not activate 2026-01-02');
    delta = { reconcileS: d.ms / 1000, bytesFetched: r2.bytesFetched, changedBytes: changed, wireDown: linkCounters(undefined).down.sent - wire1 };
    log(`  delta: ${delta.reconcileS.toFixed(2)} s, ${(delta.bytesFetched / MiB).toFixed(2)} MiB fetched`);
  }

  // ---- 3. link drops mid-transfer: curl in a blackout (the alternative), then an agent on a fresh store, two ways
  const drops: DropResult[] = [];
  let curlDrop: WanResult['curlDrop'];
  if (want('drop')) {
    curlDrop = await curlDropScenario(`${site}/info/lfs/objects/${oid2}`, size);
    for (const mode of ['lost', 'blackout'] as const) drops.push(await dropScenario(mode, size, proxy, site, logs));
  }

  // ---- 4. push-to-active: a small model, new version pushed with stock git, agent behind the link
  const push = want('push') ? await pushScenario(reg, env, proxy, site, logs, hub.url) : undefined;
  await stopAll();
  return { linkBytesPerS, full, delta, drops, curlDrop, push };

  async function fullScenario(url: string, objOid: string, bytes: number, store: string): Promise<NonNullable<WanResult['full']>> {
    log('full fetch: curl through the link');
    const c = await measure('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download}', `${url}/info/lfs/objects/${objOid}`], { cwd: work, env });
    if (c.status !== 0 || Number(c.stdout) !== bytes) throw new Error(`curl failed (${c.status}): ${c.stderr}${c.stdout}`);
    log(`  curl: ${(c.ms / 1000).toFixed(2)} s, ${((bytes / (c.ms / 1000) / linkBytesPerS) * 100).toFixed(1)} % of the link`);
    const wire0 = linkCounters(undefined).down.sent;
    log('full fetch: modelsync reconcile through the link');
    const m = await measure(process.execPath, [CLI, 'reconcile', '--site', 'edge', '--registry', url, '--store', store, '--json'], { cwd: work, env });
    if (m.status !== 0) throw new Error(`reconcile failed (${m.status}): ${m.stdout}${m.stderr}`);
    const r1 = JSON.parse(m.stdout) as { bytesFetched: number; stepMs?: Record<string, number> };
    // A whole download also fetches the object's chunk index (about 0.1 %), kept for the next delta.
    if (r1.bytesFetched < bytes || r1.bytesFetched > bytes + bytes / 500) throw new Error(`reconcile fetched ${r1.bytesFetched}, expected ${bytes} and its chunk index`);
    const wireDown = linkCounters(undefined).down.sent - wire0;
    // The same CLI precompiled into one file (what `npm ci` installs as dist/): no tsx transpiling at start.
    const bundle = join(work, 'modelsync-bundle.mjs');
    const esbuild = await import('esbuild');
    await esbuild.build({ entryPoints: [join(ROOT, 'src/cli.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: bundle, logLevel: 'warning' });
    const b = await measure(process.execPath, [bundle, 'reconcile', '--site', 'edge', '--registry', url, '--store', `${store}-bundle`, '--json'], { cwd: work, env });
    if (b.status !== 0 || (JSON.parse(b.stdout) as { bytesFetched: number }).bytesFetched !== r1.bytesFetched) throw new Error(`bundled reconcile failed (${b.status}): ${b.stdout}${b.stderr}`);
    rmSync(`${store}-bundle`, { recursive: true, force: true });
    log(`  reconcile (precompiled): ${(b.ms / 1000).toFixed(2)} s`);
    // What the process costs before and after any pass (Node and the loader starting, exiting), same machine, same moment.
    const startup = await measure(process.execPath, [CLI, '--version'], { cwd: work, env });
    const f = {
      curlS: c.ms / 1000, curlBytes: bytes, reconcileS: m.ms / 1000, bundleS: b.ms / 1000, startupS: startup.ms / 1000,
      fetchStepS: (r1.stepMs?.['fetch-objects'] ?? NaN) / 1000, registryStepS: (r1.stepMs?.['fetch-registry'] ?? NaN) / 1000, bytes, wireDown,
    };
    log(`  steps (ms): ${JSON.stringify(r1.stepMs)}; modelsync --version ${f.startupS.toFixed(2)} s`);
    log(`  reconcile: ${f.reconcileS.toFixed(2)} s (fetch step ${f.fetchStepS.toFixed(2)} s), ${((bytes / f.reconcileS / linkBytesPerS) * 100).toFixed(1)} % of the link`);
    return f;
  }
}

/** curl downloading the object while the link blacks out for the same time at the same point: what TCP alone gives. */
async function curlDropScenario(url: string, size: number): Promise<WanResult['curlDrop']> {
  const out = join(cfg.work, 'curl-drop.bin');
  log(`link drop (blackout) with curl: ${cfg.dropSeconds} s at ${Math.round(cfg.dropAt * 100)} %`);
  const child = spawn('curl', ['-sS', '-o', out, url], { stdio: 'ignore' });
  const done = new Promise<number>((r) => child.on('close', (code) => r(code ?? -1)));
  const fileBytes = (): number => {
    try {
      return statSync(out).size;
    } catch {
      return 0;
    }
  };
  await until('curl to reach the drop point', 300_000, () => fileBytes() >= size * cfg.dropAt || undefined, 10);
  setLink(undefined, cfg.link, false);
  await sleep(cfg.dropSeconds * 1000);
  const before = fileBytes();
  setLink(undefined, cfg.link, true);
  const upAt = performance.now();
  await until('curl to resume', 600_000, () => fileBytes() > before + (128 << 10) || child.exitCode !== null || undefined, 10);
  const resumeAfterUpS = (performance.now() - upAt) / 1000;
  const code = await done;
  const doneAfterUpS = (performance.now() - upAt) / 1000;
  const got = fileBytes();
  rmSync(out, { force: true });
  if (code !== 0 || got !== size) throw new Error(`curl through the blackout failed (${code}, ${got} bytes)`);
  log(`  curl: resumed ${resumeAfterUpS.toFixed(1)} s after link-up, done after ${doneAfterUpS.toFixed(1)} s`);
  return { resumeAfterUpS, doneAfterUpS, idealRestS: (size - before) / linkBytesPerS };
}

function agentYaml(dir: string, store: string, site: string, hubUrl: string, port: number): string {
  const file = join(dir, `agent-${port}.yaml`);
  writeFileSync(file, [`site: edge`, `registry: ${site}`, `hub: ${hubUrl}`, `store: ${store}`, `listen: 127.0.0.1:${port}`, 'jitter_s: 0', 'verify_interval_s: 0', 'log_level: info', ''].join('\n'));
  return file;
}

async function dropScenario(mode: 'lost' | 'blackout', size: number, proxy: ProxyProcess, site: string, logs: string): Promise<DropResult> {
  const store = join(cfg.work, `store-${mode}`);
  const port = mode === 'lost' ? 7101 : 7102;
  log(`link drop (${mode}): agent fetching ${cfg.sizeMb} MiB, link down ${cfg.dropSeconds} s at ${Math.round(cfg.dropAt * 100)} %`);
  const agent = await startAgent(agentYaml(cfg.work, store, site, proxy.url, port), logs, mode);
  try {
    // Progress is read off the link's own counter (bytes down the tbf), not the .part: a client that writes
    // ranges at their offsets (parallel ranges) grows the file sparsely.
    const wire = (): number => linkCounters(undefined).down.sent;
    const wire0 = wire();
    const atDropBytes = await until('the download to reach the drop point', 300_000, () => (wire() - wire0 >= size * cfg.dropAt ? wire() - wire0 : undefined), 20);
    setLink(undefined, cfg.link, false);
    const downAt = performance.now();
    // The uplink will come back with new NAT state: every open connection is dead, silently (no FIN, no RST).
    if (mode === 'lost') log(`  ${new Date().toISOString()} link down; ${await proxy.silence()} connections dead for good`);
    await sleep(cfg.dropSeconds * 1000);
    const before = wire();
    setLink(undefined, cfg.link, true);
    const upAt = performance.now();
    const upWall = Date.now();
    log(`  ${new Date().toISOString()} link up (.part at ${partBytes(store)} bytes)`);
    const downSeconds = (upAt - downAt) / 1000;
    // Resumed: 128 KiB (50 ms of link) more have crossed the link since it came back, or the version is active.
    await until('the transfer to resume', 600_000, () => wire() > before + (128 << 10) || readCurrent(store, 'big') === '2026-01-02' || undefined, 20);
    const resumeAfterUpS = (performance.now() - upAt) / 1000;
    await until('2026-01-02 to be active', 600_000, () => readCurrent(store, 'big') === '2026-01-02' || undefined, 10);
    const activeAfterUpS = (performance.now() - upAt) / 1000;
    // The pass that activated it has logged its line (bytes of every attempt, failed ones included).
    const passes = await until('the pass to finish', 60_000, () => {
      const lines = readFileSync(join(logs, `agent-${mode}.log`), 'utf8').split('\n').filter((l) => l.includes('"msg":"reconcile pass"'));
      return lines.some((l) => l.includes('"status":"changed"')) ? lines.map((l) => JSON.parse(l) as { bytesFetched: number; status: string }) : undefined;
    }, 50);
    const bytesFetched = passes.reduce((n, p) => n + p.bytesFetched, 0);
    const failedPasses = passes.filter((p) => p.status === 'failed').length;
    const agentLog = readFileSync(join(logs, `agent-${mode}.log`), 'utf8');
    const retries = (agentLog.match(/LFS download failed; retrying/g) ?? []).length;
    // When the client gave up on the connection it had (an error or its idle timeout), after link-up.
    const failAt = agentLog.split('\n').filter((l) => l.includes('LFS download failed')).map((l) => Date.parse((JSON.parse(l) as { time: string }).time)).find((t) => t >= upWall);
    const gaveUpAfterUpS = failAt === undefined ? null : (failAt - upWall) / 1000;
    const wireDown = wire() - wire0;
    const r: DropResult = { mode, objectBytes: size, bytesFetched, wireDown, gaveUpAfterUpS, atDropBytes, downSeconds, resumeAfterUpS, activeAfterUpS, idealRestS: (size - atDropBytes) / linkBytesPerS, retries, failedPasses };
    log(`  ${mode}: resumed ${resumeAfterUpS.toFixed(1)} s after link-up, active after ${activeAfterUpS.toFixed(1)} s; fetched ${bytesFetched - size} bytes beyond the object; ${retries} retries, ${failedPasses} failed passes`);
    return r;
  } finally {
    await stop(agent);
  }
}

async function pushScenario(reg: string, env: NodeJS.ProcessEnv, proxy: ProxyProcess, site: string, logs: string, hubUrl: string): Promise<WanResult['push']> {
  const store = join(cfg.work, 'store-push');
  const port = 7103;
  const file = join(cfg.work, 'small.bin');
  const small = MiB;
  await makeFile(file, small, 100);
  log('push-to-active: agent behind the link, publisher next to the hub');
  // The site already runs big; a second model is what gets pushed.
  const agent = await startAgent(agentYaml(cfg.work, store, site, proxy.url, port), logs, 'push');
  const fromPushMs: number[] = [];
  const fromPushDoneMs: number[] = [];
  const hubSeesMs: number[] = [];
  try {
    await until('the agent to activate big', 600_000, () => readCurrent(store, 'big') === '2026-01-02' || undefined, 50);
    for (let round = 0; round <= cfg.pushRounds; round++) {
      const version = `2026-02-${String(round + 1).padStart(2, '0')}`;
      await makeFile(file, small, 100 + round);
      run(process.execPath, [CLI, 'publish', 'small', version, file], { cwd: reg, env });
      await sleep(1000); // the agent is idle, its event stream quiet
      const t0 = performance.now();
      const pushed = spawnSync('git', ['push', '-q', 'origin', 'main'], { cwd: reg, env, encoding: 'utf8' });
      if (pushed.status !== 0) throw new Error(`git push failed: ${pushed.stderr}`);
      const t1 = performance.now();
      await until(`small ${version} active`, 120_000, () => readCurrent(store, 'small') === version || undefined, 2);
      const t2 = performance.now();
      await until('the hub to see it', 120_000, async () => {
        const sites = ((await (await fetch(`${hubUrl}/api/v1/sites`)).json()) as { sites: Array<{ site: string; models?: Array<{ model: string; active: string | null }> }> }).sites;
        return sites.find((s) => s.site === 'edge')?.models?.some((x) => x.model === 'small' && x.active === version) || undefined;
      }, 5);
      const t3 = performance.now();
      // Round 0 installs the model (the site had none): not counted.
      if (round > 0) {
        fromPushMs.push(t2 - t0);
        fromPushDoneMs.push(t2 - t1);
        hubSeesMs.push(t3 - t0);
      }
      log(`  ${version}: push ${(t1 - t0).toFixed(0)} ms, active ${(t2 - t0).toFixed(0)} ms after the push started, hub saw it at ${(t3 - t0).toFixed(0)} ms${round === 0 ? ' (install, not counted)' : ''}`);
    }
  } finally {
    await stop(agent);
  }
  return { fromPushMs, fromPushDoneMs, hubSeesMs, bytes: small };
}

main()
  .then((r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
  })
  .catch(async (err: unknown) => {
    log(`WAN driver failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    setLinkSafe();
    await stopAll();
  });

function setLinkSafe(): void {
  try {
    setLink(undefined, cfg.link, true);
  } catch {
    /* the namespace goes anyway */
  }
}
