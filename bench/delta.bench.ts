/**
 * Delta upgrades against an rsync daemon on loopback, the same files for both
 * (issue 16, rows 1–3):
 *
 *   - "tensors": a 520 MiB model of 130 blocks of 4 MiB; v2 rewrites the last
 *     13 (10%), as a retrain of the last layers does;
 *   - "blob": a 100 MiB file; v2 is the same with 1 MiB appended.
 *
 * modelsync: v1 and v2 published with `modelsync publish` (chunk index
 * included) and pushed to `modelsync serve`; a site store that holds v1
 * active runs `modelsync reconcile` (the installed CLI: dist/ built as `npm
 * ci` does), timed as a whole process. Bytes are what the hub's /metrics
 * counts in and out for that run (headers, git fetch and batch calls
 * included).
 *
 * rsync: `rsync --daemon` on 127.0.0.1 serving v2; the receiver holds v1 under
 * the same name; `rsync --stats` (sent + received) and the client's wall
 * time. rsync does not fsync by default and modelsync does (the object and
 * its directory, before it becomes visible), so an `rsync --fsync` row is
 * shown too.
 *
 * Rounds (2 for the big case, 4 for the short one), each from a fresh copy of
 * the v1 state, order alternating; the best of each is compared, and the CPU
 * steal during them is reported with it. `npm run bench -- delta`; with
 * MODELSYNC_BENCH_PROFILE=<dir>, each timed reconcile writes a V8 CPU profile
 * there, and its debug log goes to bench/.work/delta/reconcile-<model>-<round>.log.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { BenchContext, BenchReport, BenchRow } from './run.ts';
import { CLI, MiB, ROOT, benchGitEnv, measure, run, startHub } from './common.ts';

const TENSOR = 4 * MiB;
const TENSORS = 130; // 520 MiB
const RETRAINED = 13; // the last 10%
const BLOB = 100 * MiB;
const APPENDED = 1 * MiB;

/** Deterministic incompressible bytes: AES-128-CTR keystream of a seed. */
function stream(seed: string): (n: number) => Buffer {
  const key = createHash('sha256').update(seed).digest();
  const c = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return (n) => c.update(Buffer.alloc(n));
}

async function writeParts(path: string, parts: Array<{ seed: string; size: number }>): Promise<void> {
  const out = createWriteStream(path);
  for (const p of parts) {
    const next = stream(p.seed);
    for (let left = p.size; left > 0; ) {
      const n = Math.min(4 * MiB, left);
      if (!out.write(next(n))) await new Promise<void>((r) => out.once('drain', () => r()));
      left -= n;
    }
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The share of CPU time the hypervisor gave to other guests (/proc/stat's
 * steal), which on this shared VM swings the timings of whole minutes by up
 * to 2x: reported beside the ratios, so a run can be read for what it is.
 */
function cpuSteal(): { since(before: ReturnType<typeof cpuSteal>): string; total: number; steal: number } {
  let total = NaN;
  let steal = NaN;
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    total = f.reduce((a, b) => a + b, 0);
    steal = f[7] ?? NaN;
  } catch {
    // not Linux: unknown
  }
  return {
    total,
    steal,
    since: (b) => {
      const share = (steal - b.steal) / (total - b.total);
      return Number.isFinite(share) ? `${(100 * share).toFixed(1)}%` : 'unknown';
    },
  };
}

async function hubBytes(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) if (/^modelsync_hub_http_(sent|received)_bytes_total[{ ]/.test(line)) n += Number(line.trim().split(/\s+/).at(-1));
  return n;
}

interface Case {
  model: string;
  site: string;
  file: string;
  v1: Array<{ seed: string; size: number }>;
  v2: Array<{ seed: string; size: number }>;
  label: string;
  target: number;
  /** Timed rounds: the short case gets more, a burst of another guest's load can take one or two. */
  rounds: number;
}

export default async function deltaBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = { ...benchGitEnv(join(work, 'home')), MODELSYNC_NO_AUTOPUSH: '1' };
  const rows: BenchRow[] = [];
  // The installed CLI: what `npm ci` builds (bin/modelsync.js runs dist/ when it is fresh).
  run(process.execPath, [join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, env: process.env });
  const hub = await startHub(join(work, 'hub'));
  let rsyncd: ReturnType<typeof spawn> | undefined;
  try {
    const tensors = (v: number) => Array.from({ length: TENSORS }, (_, i) => ({ seed: `t${i}-${v === 2 && i >= TENSORS - RETRAINED ? 2 : 1}`, size: TENSOR }));
    const cases: Case[] = [
      { model: 'tensors', site: 'edge-a', file: 'model.bin', v1: tensors(1), v2: tensors(2), label: '520 MiB model, last 10% of tensors retrained', target: 1.0, rounds: 2 },
      { model: 'blob', site: 'edge-b', file: 'blob.bin', v1: [{ seed: 'blob', size: BLOB }], v2: [{ seed: 'blob', size: BLOB }, { seed: 'tail', size: APPENDED }], label: '100 MiB file + 1 MiB appended', target: 1.5, rounds: 4 },
    ];
    const files = join(work, 'files');
    for (const c of cases) for (const v of [1, 2] as const) {
      mkdirSync(join(files, `v${v}`), { recursive: true });
      await writeParts(join(files, `v${v}`, c.file), v === 1 ? c.v1 : c.v2);
    }
    ctx.log('files written');

    // ---- registry on the hub: v1 of both, one site per model
    const repo = join(work, 'reg');
    const cli = (args: string[], cwd = repo) => run(process.execPath, [CLI, ...args], { cwd, env });
    cli(['init', repo, '--bare-example'], work);
    run('git', ['remote', 'add', 'origin', `${hub.url}/models.git`], { cwd: repo, env });
    for (const c of cases) cli(['publish', c.model, '1', join(files, 'v1', c.file), '--message', `${c.model} 1`]);
    for (const c of cases) writeFileSync(join(repo, `sites/${c.site}.yaml`), `models: [${c.model}]\n`);
    run('git', ['add', 'sites'], { cwd: repo, env });
    run('git', ['commit', '-q', '-m', 'sites'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    run('git', ['push', '-q', 'origin', 'main'], { cwd: repo, env });
    const registry = `${hub.url}/models.git`;
    const reconcileArgs = (c: Case, store: string) => [CLI, 'reconcile', '--site', c.site, '--registry', registry, '--store', store, '--json'];
    for (const c of cases) {
      const r = await measure(process.execPath, reconcileArgs(c, join(work, `snap-${c.model}`)), { cwd: work, env });
      if (r.status !== 0) throw new Error(`v1 install failed: ${r.stdout}${r.stderr}`);
    }
    for (const c of cases) cli(['publish', c.model, '2', join(files, 'v2', c.file), '--message', `${c.model} 2`]);
    run('git', ['push', '-q', 'origin', 'main'], { cwd: repo, env });
    ctx.log('v1 installed on both sites, v2 published and pushed');

    // ---- rsync daemon serving v2
    const port = await freePort();
    const conf = join(work, 'rsyncd.conf');
    writeFileSync(conf, `use chroot = no\nport = ${port}\naddress = 127.0.0.1\npid file = ${join(work, 'rsyncd.pid')}\nlog file = ${join(work, 'rsyncd.log')}\n[m]\n  path = ${join(files, 'v2')}\n  read only = yes\n`);
    rsyncd = spawn('rsync', ['--daemon', '--no-detach', '--config', conf], { stdio: 'ignore' });
    for (let i = 0; i < 50; i++) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = spawn('rsync', [`rsync://127.0.0.1:${port}/`], { stdio: 'ignore' });
        s.on('close', (code) => resolve(code === 0));
      });
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    // Startup cost alone, for the profile: `--help` and a pass with nothing to do.
    // The first run of a command after a build compiles it and writes its code cache (bin/run-bundle.js); the second is what every later run costs.
    const helpFirst = await measure(process.execPath, [CLI, '--help'], { cwd: work, env });
    const help = await measure(process.execPath, [CLI, '--help'], { cwd: work, env });

    for (const c of cases) {
      const res: Record<'ms' | 'rsync' | 'rsyncFsync', Array<{ ms: number; bytes: number }>> = { ms: [], rsync: [], rsyncFsync: [] };
      let noop = Infinity;
      const want = createHash('sha256').update(readFileSync(join(files, 'v2', c.file))).digest('hex');
      const stealBefore = cpuSteal();
      for (let round = 0; round < c.rounds; round++) {
        const doRsync = async (fsync: boolean) => {
          const dest = join(work, 'rsync-dest');
          rmSync(dest, { recursive: true, force: true });
          mkdirSync(dest);
          run('cp', ['-a', join(files, 'v1', c.file), join(dest, c.file)], { cwd: work, env });
          run('touch', ['-d', '2020-01-01', join(dest, c.file)], { cwd: work, env });
          const r = await measure('rsync', ['-a', '--no-whole-file', '--stats', ...(fsync ? ['--fsync'] : []), `rsync://127.0.0.1:${port}/m/${c.file}`, join(dest, c.file)], { cwd: work, env });
          if (r.status !== 0) throw new Error(`rsync failed: ${r.stderr}`);
          const num = (k: string) => Number((new RegExp(`${k}: ([\\d,]+)`).exec(r.stdout)?.[1] ?? 'NaN').replace(/,/g, ''));
          const got = createHash('sha256').update(readFileSync(join(dest, c.file))).digest('hex');
          if (got !== want) throw new Error('rsync produced a different file');
          res[fsync ? 'rsyncFsync' : 'rsync'].push({ ms: r.ms, bytes: num('Total bytes sent') + num('Total bytes received') });
          ctx.log(`${c.model}: rsync${fsync ? ' --fsync' : ''} ${(r.ms / 1000).toFixed(2)} s, ${num('Total bytes sent') + num('Total bytes received')} bytes`);
        };
        const doModelsync = async () => {
          const store = join(work, `store-${c.model}`);
          rmSync(store, { recursive: true, force: true });
          run('cp', ['-a', join(work, `snap-${c.model}`), store], { cwd: work, env });
          const before = await hubBytes(hub.url);
          // MODELSYNC_BENCH_PROFILE=<dir>: a V8 CPU profile of each timed reconcile, for where the time goes.
          const prof = process.env.MODELSYNC_BENCH_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.MODELSYNC_BENCH_PROFILE] : [];
          const r = await measure(process.execPath, [...prof, ...reconcileArgs(c, store)], { cwd: work, env: { ...env, MODELSYNC_LOG_LEVEL: 'debug' } });
          writeFileSync(join(ctx.workDir, `reconcile-${c.model}-${round}.log`), r.stderr);
          const bytes = (await hubBytes(hub.url)) - before;
          if (r.status !== 0) throw new Error(`modelsync reconcile failed (${r.status}): ${r.stdout}${r.stderr}`);
          const out = JSON.parse(r.stdout) as { status: string; bytesFetched: number; durationMs: number };
          if (out.status !== 'changed') throw new Error(`reconcile did not upgrade: ${r.stdout}`);
          const got = createHash('sha256').update(readFileSync(join(store, `models/${c.model}/current/${c.file}`))).digest('hex');
          if (got !== want) throw new Error('modelsync installed a different file');
          res.ms.push({ ms: r.ms, bytes });
          ctx.log(`${c.model}: modelsync reconcile ${(r.ms / 1000).toFixed(2)} s (pass ${(out.durationMs / 1000).toFixed(2)} s), hub moved ${bytes} bytes, payload ${out.bytesFetched}, peak RSS ${(r.peakKiB / 1024).toFixed(0)} MiB`);
          const again = await measure(process.execPath, reconcileArgs(c, store), { cwd: work, env });
          noop = Math.min(noop, again.ms);
          rmSync(store, { recursive: true, force: true });
        };
        if (round % 2 === 0) {
          await doRsync(false);
          await doModelsync();
          await doRsync(true);
        } else {
          await doModelsync();
          await doRsync(true);
          await doRsync(false);
        }
      }
      const steal = cpuSteal().since(stealBefore);
      const best = (xs: Array<{ ms: number }>) => Math.min(...xs.map((x) => x.ms));
      const m = best(res.ms);
      const r = best(res.rsync);
      const rf = best(res.rsyncFsync);
      const mb = Math.min(...res.ms.map((x) => x.bytes));
      const rb = Math.min(...res.rsync.map((x) => x.bytes));
      rows.push(
        { metric: `${c.label}: modelsync reconcile`, value: (m / 1000).toFixed(2), unit: 's', note: `best of ${c.rounds}; whole CLI process (start-up, registry fetch, validation, delta, sha256, fsync, activation); a pass with nothing to do takes ${(noop / 1000).toFixed(2)} s` },
        { metric: `${c.label}: rsync daemon`, value: (r / 1000).toFixed(2), unit: 's', note: `best of ${c.rounds}; --fsync: ${(rf / 1000).toFixed(2)} s` },
        { metric: `${c.label}: time ratio modelsync / rsync`, value: (m / r).toFixed(2), note: `target ≤ ${c.target.toFixed(1)}; vs rsync --fsync ${(m / rf).toFixed(2)}; all runs: modelsync ${res.ms.map((x) => (x.ms / 1000).toFixed(2)).join(', ')}, rsync ${res.rsync.map((x) => (x.ms / 1000).toFixed(2)).join(', ')} s; CPU time stolen by the hypervisor meanwhile: ${steal}` },
        { metric: `${c.label}: bytes moved modelsync / rsync`, value: (mb / rb).toFixed(3), note: `${mb} vs ${rb} bytes (both directions); target ≤ 1.05` },
      );
    }
    rows.push({ metric: 'CLI start-up (`modelsync --help`)', value: (help.ms / 1000).toFixed(2), unit: 's', note: `dist/ as npm ci builds it, from its code cache; the first run after a build (no cache yet) took ${(helpFirst.ms / 1000).toFixed(2)} s` });
  } finally {
    if (rsyncd) {
      const exited = new Promise<void>((r) => rsyncd!.once('exit', () => r()));
      rsyncd.kill('SIGTERM');
      await exited;
    }
    await hub.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return { name: 'delta upgrades vs an rsync daemon on loopback', rows };
}
