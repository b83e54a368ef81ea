/**
 * A site behind a mirror against the same site talking to the upstream
 * directly, side by side: an upstream `modelsync serve` and a mirror
 * `modelsync serve --mirror` in their own processes; three agents behind the
 * mirror and three agents on the upstream, all in this process, subscribed at
 * the same time, so every push is raced by both groups on the same cores.
 *
 * - t0 is when an observer subscribed to the upstream sees the `ref` event
 *   (the publisher's push is complete upstream); each agent's time is when
 *   its `current` link names the new version.
 * - "WAN" bytes: the upstream's own /metrics, `lfs-download` bytes sent,
 *   counted per round: the direct group fetches each object three times, the
 *   mirror once.
 * - Two settings. "loopback": the upstream on 127.0.0.1, no link cost at
 *   all, so the mirror's extra hop shows as pure overhead. "WAN": the upstream
 *   in a network namespace of its own behind a veth pair shaped to
 *   MODELSYNC_BENCH_WAN_MBIT (default 50) Mbit/s each way with `tc tbf` (the
 *   site's uplink; the mirror and its agents talk over loopback, the LAN).
 *   The WAN setting needs root and `ip`/`tc` (iproute2); without them it is
 *   skipped and says so. The namespace is removed at the end.
 *
 *   npm run bench -- mirror          (MODELSYNC_BENCH_SIZE_MB sets the model size; default here 4 MiB)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from '../src/agent/daemon.ts';
import { systemClock } from '../src/agent/clock.ts';
import { EventSubscriber } from '../src/agent/events.ts';
import { silentLogger } from '../src/log.ts';
import { AgentConfigFile } from '../src/registry/schema.ts';
import { CLI, MiB, benchGitEnv, makeFile, manifestYaml, run, whenListening } from './common.ts';
import type { BenchContext, BenchReport } from './run.ts';

const PER_GROUP = 3;
const ROUNDS = 5;

function serve(args: string[], netns?: string, listen = '127.0.0.1:0'): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> {
  const argv = [process.execPath, CLI, 'serve', '--listen', listen, ...args];
  const [cmd, ...rest] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
  const child = spawn(cmd!, rest, { env: { ...process.env, MODELSYNC_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return whenListening(child, 'serve');
}

function gitAsync(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`git ${args.join(' ')} failed: ${err}`))));
  });
}

/** A shaped "WAN": a namespace holding one end of a veth pair, both ends capped with tbf. */
interface Wan {
  netns: string;
  /** The upstream's address inside the namespace. */
  address: string;
  remove(): void;
}

function sh(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  return { ok: r.status === 0, err: `${r.stderr ?? ''}${r.error?.message ?? ''}`.trim() };
}

function makeWan(mbit: number): Wan | string {
  const id = (process.pid % 100_000).toString(36);
  const netns = `msb-wan-${id}`;
  const host = `msbh${id}`;
  const peer = `msbw${id}`;
  const remove = (): void => void sh(['ip', 'netns', 'del', netns]);
  const steps = [
    ['ip', 'netns', 'add', netns],
    ['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', peer],
    ['ip', 'link', 'set', peer, 'netns', netns],
    ['ip', 'addr', 'add', '10.251.77.2/30', 'dev', host],
    ['ip', 'link', 'set', host, 'up'],
    ['ip', 'netns', 'exec', netns, 'ip', 'addr', 'add', '10.251.77.1/30', 'dev', peer],
    ['ip', 'netns', 'exec', netns, 'ip', 'link', 'set', peer, 'up'],
    ['ip', 'netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up'],
    // Downloads (upstream → site) leave through the namespace's end; uploads through ours.
    ['ip', 'netns', 'exec', netns, 'tc', 'qdisc', 'add', 'dev', peer, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', '64kb', 'latency', '400ms'],
    ['tc', 'qdisc', 'add', 'dev', host, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', '64kb', 'latency', '400ms'],
  ];
  for (const step of steps) {
    const r = sh(step);
    if (!r.ok) {
      remove();
      sh(['ip', 'link', 'del', host]);
      return `${step.join(' ')}: ${r.err || 'failed'}`;
    }
  }
  return { netns, address: '10.251.77.1', remove: () => { remove(); sh(['ip', 'link', 'del', host]); } };
}

async function lfsSentBytes(hub: string, auth?: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${hub}/metrics`, { headers: auth })).text();
  const line = text.split('\n').find((l) => l.startsWith('modelsync_hub_http_sent_bytes_total{') && l.includes('route="lfs-download"'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

interface Setting {
  name: string;
  wan?: Wan;
}

interface Outcome {
  direct: number[];
  mirrored: number[];
  directBytes: number;
  mirrorBytes: number;
}

export default async function mirrorBench(ctx: BenchContext): Promise<BenchReport> {
  const size = (process.env.MODELSYNC_BENCH_SIZE_MB ? Number(process.env.MODELSYNC_BENCH_SIZE_MB) : 4) * MiB;
  const mbit = Number(process.env.MODELSYNC_BENCH_WAN_MBIT ?? 50);
  const rows: BenchReport['rows'] = [];
  const settings: Setting[] = [{ name: 'loopback' }];
  const wan = process.getuid?.() === 0 ? makeWan(mbit) : 'not root';
  if (typeof wan === 'string') ctx.log(`WAN setting skipped: ${wan}`);
  else settings.push({ name: `WAN ${mbit} Mbit/s`, wan });
  try {
    for (const setting of settings) {
      ctx.log(`--- ${setting.name}`);
      const o = await runSetting(ctx, setting, size);
      const note = `${setting.name}; ${PER_GROUP} agents per group in one process, upstream and mirror in their own processes, ${size / MiB} MiB per version, ${ROUNDS} rounds`;
      rows.push(
        { metric: `${setting.name}: direct to upstream, event → slowest of 3 active, median`, value: median(o.direct).toFixed(0), unit: 'ms', note },
        { metric: `${setting.name}: behind the mirror, event → slowest of 3 active, median`, value: median(o.mirrored).toFixed(0), unit: 'ms', note: 'the mirror fetches Git and the objects, then re-emits the event' },
        { metric: `${setting.name}: behind the mirror, worst round`, value: Math.max(...o.mirrored).toFixed(0), unit: 'ms', note: 'issue 15 target: within a second of the push' },
        { metric: `${setting.name}: mirror / direct latency (medians)`, value: (median(o.mirrored) / median(o.direct)).toFixed(2), unit: '×' },
        { metric: `${setting.name}: upstream LFS bytes, mirrored site / direct site`, value: (o.mirrorBytes / o.directBytes).toFixed(3), unit: '×', note: `direct: each of ${PER_GROUP} agents fetches each object; mirror: once (headers included)` },
      );
    }
  } finally {
    if (typeof wan !== 'string') wan.remove();
  }
  return { name: 'site mirror: upstream push → agents active, behind a mirror vs direct', rows };
}

async function runSetting(ctx: BenchContext, setting: Setting, size: number): Promise<Outcome> {
  const work = join(ctx.workDir, setting.wan ? 'wan' : 'loopback');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const env = benchGitEnv(join(work, 'home'));
  // Off loopback a hub needs tokens: one for the publisher, the mirror, and each direct agent.
  const secrets = new Map<string, string>();
  let tokenArgs: string[] = [];
  if (setting.wan) {
    const names = ['ci', 'mirror', ...[...Array(PER_GROUP).keys()].map((i) => `direct${i}`)];
    const lines = ['tokens:'];
    for (const n of names) {
      secrets.set(n, randomBytes(18).toString('base64url'));
      const role = n === 'ci' ? 'publisher' : n === 'mirror' ? 'admin' : 'site';
      lines.push(`  - {name: ${n}, sha256: ${createHash('sha256').update(secrets.get(n)!).digest('hex')}, role: ${role}${role === 'site' ? `, sites: [${n}]` : ''}}`);
    }
    writeFileSync(join(work, 'tokens.yaml'), `${lines.join('\n')}\n`);
    writeFileSync(join(work, 'mirror-token'), `${secrets.get('mirror')}\n`, { mode: 0o600 });
    tokenArgs = ['--tokens', join(work, 'tokens.yaml')];
  }
  const auth = setting.wan ? { authorization: `Bearer ${secrets.get('mirror')}` } : undefined;
  const upstream = await serve(['--data', join(work, 'upstream'), ...tokenArgs], setting.wan?.netns, setting.wan ? `${setting.wan.address}:0` : undefined);
  const agents: Agent[] = [];
  let observer: EventSubscriber | undefined;
  let mirror: Awaited<ReturnType<typeof serve>> | undefined;
  try {
    const pub = join(work, 'publisher');
    mkdirSync(join(pub, 'sites'), { recursive: true });
    run('git', ['init', '-q', '-b', 'main'], { cwd: pub, env });
    run('git', ['lfs', 'install', '--local'], { cwd: pub, env });
    writeFileSync(join(pub, '.gitattributes'), 'registry/** filter=lfs diff=lfs merge=lfs -text\nregistry/**/*.yaml !filter !diff !merge text\n');
    const sites = [...Array(PER_GROUP).keys()].flatMap((i) => [`direct${i}`, `mirrored${i}`]);
    for (const s of sites) writeFileSync(join(pub, `sites/${s}.yaml`), 'retention: {keep: 1}\n');
    const publish = async (version: number): Promise<void> => {
      const dir = join(pub, 'registry/model', String(version));
      const sha256 = await makeFile(join(dir, 'model.bin'), size, version);
      writeFileSync(join(dir, 'manifest.yaml'), manifestYaml('model', String(version), [{ name: 'model.bin', sha256, size }]));
      writeFileSync(join(pub, 'registry/model_registry.yaml'), `models:\n  model: {current_version: "${version}"}\n`);
      run('git', ['add', '-A'], { cwd: pub, env });
      run('git', ['commit', '-q', '-m', `model ${version}`], { cwd: pub, env });
    };
    const upUrl = `${upstream.url}/registry.git`;
    const pushUrl = setting.wan ? `http://ci:${secrets.get('ci')}@${new URL(upstream.url).host}/registry.git` : upUrl;
    await publish(1);
    await gitAsync(['push', '-q', pushUrl, 'main'], pub, env);
    mirror = await serve(['--data', join(work, 'mirror'), '--mirror', upUrl, ...(setting.wan ? ['--token-file', join(work, 'mirror-token')] : [])]);

    for (const s of sites) {
      const hub = s.startsWith('direct') ? upstream.url : mirror.url;
      const cfg = AgentConfigFile.parse({ site: s, registry: `${hub}/registry.git`, store: join(work, `store-${s}`), hub, jitter_s: 0, verify_interval_s: 0 });
      const token = s.startsWith('direct') ? secrets.get(s) : undefined;
      const agent = await Agent.create({ ...cfg, origin: 'bench' }, { logger: silentLogger, env: token ? { MODELSYNC_TOKEN: token } : {}, retryBaseMs: 100, retryMaxMs: 400 });
      agents.push(agent);
      await agent.start();
    }
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      const end = Date.now() + 30_000;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    const active = (s: string): string | undefined => {
      try {
        return readlinkSync(join(work, `store-${s}`, 'models/model/current'));
      } catch {
        return undefined;
      }
    };
    await until(() => sites.every((s) => active(s) === '1') && agents.every((a) => a.status().hub?.connected), 'the six agents to start on version 1');
    await Promise.all(agents.map((a) => a.whenIdle()));

    let eventAt = 0;
    observer = new EventSubscriber({
      url: `${upstream.url}/api/v1/events?repo=registry`, token: secrets.get('mirror'), fetch, clock: systemClock, logger: silentLogger,
      onEvent: (e) => {
        if (e.event === 'ref' && eventAt === 0) eventAt = performance.now();
      },
    });
    observer.start();
    await new Promise((r) => setTimeout(r, 300));

    const direct: number[] = [];
    const mirrored: number[] = [];
    let directBytes = 0;
    let mirrorBytes = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const version = String(round + 2);
      await publish(round + 2);
      const before = await lfsSentBytes(upstream.url, auth);
      eventAt = 0;
      const at = new Map<string, number>();
      const pushing = gitAsync(['push', '-q', pushUrl, 'main'], pub, env);
      const end = Date.now() + 60_000;
      while (at.size < sites.length) {
        const now = performance.now();
        for (const s of sites) if (!at.has(s) && active(s) === version) at.set(s, now);
        if (Date.now() > end) throw new Error(`round ${round + 1}: only ${at.size}/${sites.length} agents activated ${version}`);
        await new Promise((r) => setTimeout(r, 1));
      }
      await pushing;
      if (eventAt === 0) throw new Error('the observer saw no ref event');
      const d = sites.filter((s) => s.startsWith('direct')).map((s) => at.get(s)! - eventAt);
      const m = sites.filter((s) => s.startsWith('mirrored')).map((s) => at.get(s)! - eventAt);
      direct.push(Math.max(...d));
      mirrored.push(Math.max(...m));
      await Promise.all(agents.map((a) => a.whenIdle()));
      // The upstream's bytes this round: three direct agents' copies plus the mirror's one.
      const sent = (await lfsSentBytes(upstream.url, auth)) - before;
      directBytes += PER_GROUP * size;
      mirrorBytes += sent - PER_GROUP * size;
      ctx.log(`round ${round + 1}: direct group ${Math.max(...d).toFixed(0)} ms, mirror group ${Math.max(...m).toFixed(0)} ms (slowest of ${PER_GROUP}); upstream sent ${(sent / MiB).toFixed(2)} MiB of LFS`);
    }
    return { direct, mirrored, directBytes, mirrorBytes };
  } finally {
    observer?.stop();
    await Promise.all(agents.map((a) => a.stop()));
    await mirror?.stop();
    await upstream.stop();
  }
}
