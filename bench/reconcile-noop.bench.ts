/**
 * A no-op pass: nothing changed in the registry, the store intact, holding
 * 20 models × 5 versions. Reports the pass time (in-process, and the whole
 * CLI process) for a hub registry and a local-path registry, and shows that
 * the pass reads no model bytes: under strace, no file below the store's
 * models/ or objects/ is opened (the pass only stats them).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { reconcile } from '../src/reconcile/index.ts';
import type { BenchContext, BenchReport, BenchRow } from './run.ts';
import { CLI, benchGitEnv, makeFile, manifestYaml, measure, run, startHub } from './common.ts';

const MODELS = 20;
const VERSIONS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export default async function reconcileNoopBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = benchGitEnv(join(work, 'home'));
  const hub = await startHub(join(work, 'hub'));
  const rows: BenchRow[] = [];
  try {
    ctx.log(`registry: ${MODELS} models × ${VERSIONS} versions`);
    const pub = join(work, 'publisher');
    mkdirSync(pub);
    run('git', ['init', '-q', '-b', 'main'], { cwd: pub, env });
    run('git', ['lfs', 'install', '--local'], { cwd: pub, env });
    writeFileSync(join(pub, '.gitattributes'), 'registry/** filter=lfs diff=lfs merge=lfs -text\nregistry/**/*.yaml !filter !diff !merge text\n');
    let modelBytes = 0;
    for (let m = 0; m < MODELS; m++) {
      for (let v = 1; v <= VERSIONS; v++) {
        const dir = join(pub, 'registry', `model${m}`, String(v));
        const files = [];
        for (const [i, size] of [256 << 10, 64 << 10].entries()) {
          const name = i === 0 ? 'weights.bin' : 'extra/labels.bin';
          files.push({ name, size, sha256: await makeFile(join(dir, name), size, m * 100 + v * 10 + i) });
          modelBytes += size;
        }
        writeFileSync(join(dir, 'manifest.yaml'), manifestYaml(`model${m}`, String(v), files));
      }
    }
    const setAll = (v: number): void =>
      writeFileSync(join(pub, 'registry/model_registry.yaml'), `models:\n${Array.from({ length: MODELS }, (_, m) => `  model${m}: {current_version: "${v}"}`).join('\n')}\n`);
    mkdirSync(join(pub, 'sites'));
    writeFileSync(join(pub, 'sites/edge.yaml'), `retention: {keep: ${VERSIONS}}\n`);
    const url = `${hub.url}/registry.git`;
    const stores = { hub: join(work, 'store-hub'), local: join(work, 'store-local') };
    for (let v = 1; v <= VERSIONS; v++) {
      setAll(v);
      run('git', ['add', '-A'], { cwd: pub, env });
      run('git', ['commit', '-q', '-m', `all models ${v}`], { cwd: pub, env });
      run('git', ['push', '-q', url, 'main'], { cwd: pub, env });
      for (const [kind, registry] of [['hub', url], ['local', pub]] as const) {
        const r = await reconcile({ site: 'edge', registry, store: stores[kind] });
        if (r.status !== 'changed') throw new Error(`building the ${kind} store: pass ${v} ended ${r.status}: ${JSON.stringify(r.errors)}`);
      }
    }
    ctx.log(`stores hold ${MODELS * VERSIONS} versions (${(modelBytes / (1 << 20)).toFixed(0)} MiB of model files each)`);

    for (const [kind, registry] of [['hub', url], ['local', pub]] as const) {
      const store = stores[kind];
      const inProc: number[] = [];
      let steps = '';
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        const r = await reconcile({ site: 'edge', registry, store });
        inProc.push(performance.now() - t);
        steps = Object.entries(r.stepMs).filter(([, ms]) => ms > 0).map(([k, ms]) => `${k} ${ms}`).join(', ');
        if (r.status !== 'in-sync' || r.bytesFetched !== 0) throw new Error(`no-op pass was ${r.status}, fetched ${r.bytesFetched}`);
      }
      // The agent's path (hooks that get what the pass read): the snapshot too, unless a hook loads the registry.
      const loaded: number[] = [];
      const hooks = { onRegistry: () => {}, afterSwitch: async () => ({ unhealthy: [] }), afterRollback: async () => {} };
      // The store was built by plain passes, which switch without services: the first
      // agent pass owes those switches their service verdicts, so it is not a no-op.
      const first = await reconcile({ site: 'edge', registry, store, hooks });
      if (first.bytesFetched !== 0) throw new Error(`agent's first pass fetched ${first.bytesFetched} bytes`);
      for (let i = 0; i < 3; i++) {
        const r = await reconcile({ site: 'edge', registry, store, hooks });
        if (r.status !== 'in-sync' || r.desiredFrom !== 'snapshot') throw new Error(`agent-style no-op pass was ${r.status} from ${r.desiredFrom}`);
        loaded.push(r.durationMs);
      }
      const cli: number[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await measure(process.execPath, [CLI, 'reconcile', '--site', 'edge', '--registry', registry, '--store', store, '--json'], { cwd: work, env });
        if (m.status !== 0) throw new Error(`CLI no-op pass failed: ${m.stdout}${m.stderr}`);
        cli.push(m.ms);
      }
      rows.push(
        { metric: `no-op pass, ${kind} registry (in-process)`, value: median(inProc).toFixed(0), unit: 'ms', note: `median of 5; ${MODELS} models × ${VERSIONS} versions in the store; last pass ms by step: ${steps}` },
        { metric: `no-op pass, ${kind} registry, agent path (hooks)`, value: median(loaded).toFixed(0), unit: 'ms', note: 'median of 3; desired state reused from the snapshot, no manifest read' },
        { metric: `no-op pass, ${kind} registry (whole CLI process)`, value: median(cli).toFixed(0), unit: 'ms', note: 'median of 3; includes node + tsx start-up' },
      );

      // What the pass opens: strace every open of the CLI process tree; none may be a model file.
      if (spawnSync('strace', ['-V']).status === 0) {
        const trace = join(work, `strace-${kind}.txt`);
        const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=open,openat,openat2', '-o', trace, process.execPath, CLI, 'reconcile', '--site', 'edge', '--registry', registry, '--store', store, '--json'], { cwd: work, env, encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`strace run failed: ${r.stderr}`);
        const lines = readFileSync(trace, 'utf8').split('\n');
        const modelOpens = lines.filter((l) => (l.includes(`${store}/models/`) || l.includes(`${store}/objects/`)) && !l.includes('O_DIRECTORY') && !/= -1 /.test(l));
        rows.push({
          metric: `files under models/ or objects/ opened by a no-op pass (${kind})`,
          value: modelOpens.length,
          note: `strace -f of the CLI; ${lines.filter((l) => l.includes(store)).length} store paths touched in all (stat, directories, state.json); model bytes read: ${modelOpens.length === 0 ? 0 : 'see trace'}`,
        });
        if (modelOpens.length > 0) ctx.log(`opened model files:\n${modelOpens.slice(0, 5).join('\n')}`);
      } else {
        rows.push({ metric: `model files opened (${kind})`, value: 'n/a', note: 'strace not installed' });
      }
    }
  } finally {
    await hub.stop();
    rmSync(work, { recursive: true, force: true });
  }
  return { name: 'reconcile: no-op pass on a store with 20 models × 5 versions', rows };
}
