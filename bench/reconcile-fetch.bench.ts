/**
 * Fetching a new model of ctx.sizeMb MiB in four files from the hub:
 * `modelsync reconcile` (registry clone + validation + LFS download with
 * verification + activation) against `git lfs pull` by the stock client on a
 * fresh clone of the same registry from the same hub, same run, each in its
 * own process. Reports the time ratio (target ≤ 1.0) and each one's peak RSS
 * (target for modelsync < 150 MB whatever the size).
 *
 * Order alternates (git-lfs, modelsync, modelsync precompiled, twice) so
 * none gets a warmer page cache; the best of two runs of each is compared.
 * The precompiled variant is the same source bundled with esbuild: the
 * shipped bin runs TypeScript through tsx, which costs memory and start-up.
 */
import { rmSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, BenchReport, BenchRow } from './run.ts';
import { CLI, MiB, ROOT, benchGitEnv, makeFile, manifestYaml, measure, run, startHub } from './common.ts';

export default async function reconcileFetchBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = benchGitEnv(join(work, 'home'));
  const hub = await startHub(join(work, 'hub'));
  const rows: BenchRow[] = [];
  try {
    // ---- a registry with one model of sizeMb in four files, pushed with stock git + git lfs
    const total = ctx.sizeMb * MiB;
    const parts = [0.4, 0.3, 0.2, 0.1].map((f, i) => ({ name: `part${i}.bin`, size: i === 3 ? total - Math.floor(total * 0.4) - Math.floor(total * 0.3) - Math.floor(total * 0.2) : Math.floor(total * f) }));
    const pub = join(work, 'publisher');
    mkdirSync(pub);
    run('git', ['init', '-q', '-b', 'main'], { cwd: pub, env });
    run('git', ['lfs', 'install', '--local'], { cwd: pub, env });
    writeFileSync(join(pub, '.gitattributes'), 'registry/** filter=lfs diff=lfs merge=lfs -text\nregistry/**/*.yaml !filter !diff !merge text\n');
    ctx.log(`writing ${ctx.sizeMb} MiB of model files`);
    const files = [];
    for (const [i, p] of parts.entries()) files.push({ name: p.name, size: p.size, sha256: await makeFile(join(pub, 'registry/big/1', p.name), p.size, i + 1) });
    writeFileSync(join(pub, 'registry/big/1/manifest.yaml'), manifestYaml('big', '1', files));
    writeFileSync(join(pub, 'registry/model_registry.yaml'), 'models:\n  big: {current_version: "1"}\n');
    mkdirSync(join(pub, 'sites'));
    writeFileSync(join(pub, 'sites/edge.yaml'), 'retention: {keep: 1}\n');
    ctx.log('committing (git-lfs clean filter) and pushing to the hub');
    run('git', ['add', '-A'], { cwd: pub, env });
    run('git', ['commit', '-q', '-m', 'big 1'], { cwd: pub, env });
    const url = `${hub.url}/registry.git`;
    run('git', ['push', '-q', url, 'main'], { cwd: pub, env });

    // The same CLI precompiled into one ESM file (packages left external): what a packaged build would run,
    // without tsx's loader thread and on-the-fly transpiling.
    const bundle = join(ctx.workDir, 'modelsync-bundle.mjs');
    const esbuild = await import('esbuild');
    await esbuild.build({ entryPoints: [join(ROOT, 'src/cli.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: bundle, logLevel: 'warning' });

    const results: Record<'gitlfs' | 'modelsync' | 'bundle', Array<{ ms: number; peakKiB: number }>> = { gitlfs: [], modelsync: [], bundle: [] };
    for (let round = 0; round < 2; round++) {
      // stock client: clone without smudging (not timed), then time `git lfs pull`
      const clone = join(work, `clone-${round}`);
      run('git', ['clone', '-q', url, clone], { cwd: work, env: { ...env, GIT_LFS_SKIP_SMUDGE: '1' } });
      const g = await measure('git', ['lfs', 'pull'], { cwd: clone, env });
      if (g.status !== 0) throw new Error(`git lfs pull failed: ${g.stderr}`);
      const check = readFileSync(join(clone, 'registry/big/1/part3.bin'));
      if (check.length !== parts[3]!.size) throw new Error('git lfs pull did not smudge part3.bin');
      results.gitlfs.push(g);
      ctx.log(`git lfs pull: ${(g.ms / 1000).toFixed(2)} s, peak RSS ${(g.peakKiB / 1024).toFixed(0)} MiB`);
      rmSync(clone, { recursive: true, force: true });

      const store = join(work, `store-${round}`);
      const m = await measure(process.execPath, [CLI, 'reconcile', '--site', 'edge', '--registry', url, '--store', store, '--json'], { cwd: work, env });
      if (m.status !== 0) throw new Error(`modelsync reconcile failed (${m.status}): ${m.stdout}${m.stderr}`);
      const res = JSON.parse(m.stdout) as { bytesFetched: number; status: string; durationMs: number };
      if (res.bytesFetched !== total || res.status !== 'changed') throw new Error(`modelsync fetched ${res.bytesFetched} bytes (${res.status}), expected ${total}`);
      results.modelsync.push(m);
      ctx.log(`modelsync reconcile: ${(m.ms / 1000).toFixed(2)} s (pass itself ${(res.durationMs / 1000).toFixed(2)} s), peak RSS ${(m.peakKiB / 1024).toFixed(0)} MiB`);
      rmSync(store, { recursive: true, force: true });

      const b = await measure(process.execPath, [bundle, 'reconcile', '--site', 'edge', '--registry', url, '--store', store, '--json'], { cwd: work, env });
      if (b.status !== 0 || JSON.parse(b.stdout).bytesFetched !== total) throw new Error(`bundled modelsync reconcile failed (${b.status}): ${b.stdout}${b.stderr}`);
      results.bundle.push(b);
      ctx.log(`modelsync reconcile (precompiled): ${(b.ms / 1000).toFixed(2)} s, peak RSS ${(b.peakKiB / 1024).toFixed(0)} MiB`);
      rmSync(store, { recursive: true, force: true });
    }
    const best = (xs: Array<{ ms: number }>): number => Math.min(...xs.map((x) => x.ms));
    const peak = (xs: Array<{ peakKiB: number }>): number => Math.max(...xs.map((x) => x.peakKiB));
    const g = best(results.gitlfs);
    const m = best(results.modelsync);
    rows.push(
      { metric: `modelsync reconcile, new ${ctx.sizeMb} MiB model (4 files)`, value: (m / 1000).toFixed(2), unit: 's', note: `best of 2; ${(total / MiB / (m / 1000)).toFixed(0)} MiB/s; includes registry clone, validation, sha256 verify, activation` },
      { metric: 'git lfs pull (stock client), same objects', value: (g / 1000).toFixed(2), unit: 's', note: `best of 2; ${(total / MiB / (g / 1000)).toFixed(0)} MiB/s; clone not timed` },
      { metric: 'time ratio modelsync / git lfs', value: (m / g).toFixed(2), note: 'target ≤ 1.0' },
      { metric: 'modelsync peak RSS', value: (peak(results.modelsync) / 1024).toFixed(0), unit: 'MiB', note: 'target < 150 MB whatever the size' },
      { metric: 'git lfs pull peak RSS', value: (peak(results.gitlfs) / 1024).toFixed(0), unit: 'MiB', note: 'git + git-lfs processes' },
      { metric: 'modelsync precompiled (esbuild bundle of src/cli.ts), time', value: (best(results.bundle) / 1000).toFixed(2), unit: 's', note: `ratio to git lfs ${(best(results.bundle) / g).toFixed(2)}` },
      { metric: 'modelsync precompiled, peak RSS', value: (peak(results.bundle) / 1024).toFixed(0), unit: 'MiB', note: 'the same code without tsx at run time (its loader thread and transpiler cost ~35 MiB)' },
    );
  } finally {
    await hub.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return { name: 'reconcile: fetch a new model from the hub vs git lfs pull', rows };
}
