/**
 * Push-to-active latency: ten agents subscribed to a hub's event stream on
 * loopback; a publisher pushes a new version (a 1 MiB model file, promoted in
 * the same commit) with the stock git + git-lfs clients; we time until each
 * agent's `current` link names the new version.
 *
 * - The hub runs in its own process (`modelsync serve`), as an operator runs it.
 * - The ten agents run in this one process: they share one event loop and the
 *   machine's two cores, so the numbers are a pessimistic bound for agents on
 *   their own machines.
 * - t0 is when the hub's `ref` event reaches an observer subscribed like the
 *   agents are (the push is complete at the hub); "from git push" adds the
 *   publisher's own push (LFS upload, receive-pack) for reference.
 * - Five rounds, each publishing a new version: 50 samples.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../src/agent/daemon.ts';
import { EventSubscriber } from '../src/agent/events.ts';
import { systemClock } from '../src/agent/clock.ts';
import { AgentConfigFile } from '../src/registry/schema.ts';
import { silentLogger } from '../src/log.ts';
import type { BenchContext, BenchReport } from './run.ts';
import { MiB, benchGitEnv, makeFile, manifestYaml, run, startHub } from './common.ts';

const AGENTS = 10;
const ROUNDS = 5;

function gitAsync(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git ${args.join(' ')} failed: ${err}`))));
  });
}

function quantile(sorted: number[], q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

export default async function agentLatencyBench(ctx: BenchContext): Promise<BenchReport> {
  const work = join(ctx.workDir, 'run');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = benchGitEnv(join(work, 'home'));
  const hub = await startHub(join(work, 'hub'));
  const agents: Agent[] = [];
  let observer: EventSubscriber | undefined;
  try {
    const pub = join(work, 'publisher');
    mkdirSync(pub);
    run('git', ['init', '-q', '-b', 'main'], { cwd: pub, env });
    run('git', ['lfs', 'install', '--local'], { cwd: pub, env });
    writeFileSync(join(pub, '.gitattributes'), 'registry/** filter=lfs diff=lfs merge=lfs -text\nregistry/**/*.yaml !filter !diff !merge text\n');
    mkdirSync(join(pub, 'sites'));
    for (let i = 0; i < AGENTS; i++) writeFileSync(join(pub, `sites/site${i}.yaml`), 'retention: {keep: 1}\n');
    const publish = async (version: number): Promise<void> => {
      const dir = join(pub, 'registry/model', String(version));
      const sha256 = await makeFile(join(dir, 'model.bin'), MiB, version);
      writeFileSync(join(dir, 'manifest.yaml'), manifestYaml('model', String(version), [{ name: 'model.bin', sha256, size: MiB }]));
      writeFileSync(join(pub, 'registry/model_registry.yaml'), `models:\n  model: {current_version: "${version}"}\n`);
      run('git', ['add', '-A'], { cwd: pub, env });
      run('git', ['commit', '-q', '-m', `model ${version}`], { cwd: pub, env });
    };
    const url = `${hub.url}/registry.git`;
    await publish(1);
    await gitAsync(['push', '-q', url, 'main'], pub, env);

    for (let i = 0; i < AGENTS; i++) {
      const cfg = AgentConfigFile.parse({ site: `site${i}`, registry: url, store: join(work, `store${i}`), hub: hub.url, jitter_s: 0, verify_interval_s: 0 });
      const agent = await Agent.create({ ...cfg, origin: 'bench' }, { logger: silentLogger, env: {} });
      agents.push(agent);
      await agent.start();
    }
    await Promise.all(agents.map((a) => a.whenIdle()));
    const connected = async (): Promise<void> => {
      const end = Date.now() + 10_000;
      while (!agents.every((a) => a.status().hub?.connected)) {
        if (Date.now() > end) throw new Error('agents did not subscribe to the hub');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await connected();

    let eventAt = 0;
    observer = new EventSubscriber({
      url: `${hub.url}/api/v1/events?repo=registry`, fetch, clock: systemClock, logger: silentLogger,
      onEvent: (e) => {
        if (e.event === 'ref' && eventAt === 0) eventAt = performance.now();
      },
    });
    observer.start();
    await new Promise((r) => setTimeout(r, 200));

    const fromEvent: number[] = [];
    const fromPush: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const version = String(round + 2);
      await publish(round + 2);
      eventAt = 0;
      const active = new Array<number>(AGENTS).fill(0);
      const pushStart = performance.now();
      const pushing = gitAsync(['push', '-q', url, 'main'], pub, env);
      const end = Date.now() + 30_000;
      while (active.some((t) => t === 0)) {
        const now = performance.now();
        for (let i = 0; i < AGENTS; i++) {
          if (active[i] === 0) {
            try {
              if (readlinkSync(join(work, `store${i}`, 'models/model/current')) === version) active[i] = now;
            } catch {
              /* not there yet */
            }
          }
        }
        if (Date.now() > end) throw new Error(`round ${round}: only ${active.filter((t) => t > 0).length}/${AGENTS} agents activated ${version}`);
        await new Promise((r) => setTimeout(r, 1));
      }
      await pushing;
      if (eventAt === 0) throw new Error('the observer saw no ref event');
      for (const t of active) {
        fromEvent.push(t - eventAt);
        fromPush.push(t - pushStart);
      }
      ctx.log(`round ${round + 1}: from event median ${quantile([...active].map((t) => t - eventAt).sort((a, b) => a - b), 0.5).toFixed(0)} ms, worst ${Math.max(...active.map((t) => t - eventAt)).toFixed(0)} ms`);
      await Promise.all(agents.map((a) => a.whenIdle()));
    }
    const e = [...fromEvent].sort((a, b) => a - b);
    const p = [...fromPush].sort((a, b) => a - b);
    const note = `${AGENTS} agents in one process, hub in its own, loopback, 1 MiB model per version, ${ROUNDS} rounds (${e.length} samples)`;
    return {
      name: 'agent push-to-active latency',
      rows: [
        { metric: 'hub event → active, median', value: quantile(e, 0.5).toFixed(0), unit: 'ms', note },
        { metric: 'hub event → active, p90', value: quantile(e, 0.9).toFixed(0), unit: 'ms' },
        { metric: 'hub event → active, worst', value: e[e.length - 1]!.toFixed(0), unit: 'ms', note: 'target: within 1-2 s of the push' },
        { metric: 'git push start → active, median', value: quantile(p, 0.5).toFixed(0), unit: 'ms', note: 'includes the publisher’s LFS upload and receive-pack' },
        { metric: 'git push start → active, worst', value: p[p.length - 1]!.toFixed(0), unit: 'ms' },
      ],
    };
  } finally {
    observer?.stop();
    await Promise.all(agents.map((a) => a.stop()));
    await hub.stop();
  }
}
