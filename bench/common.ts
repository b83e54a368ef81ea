/**
 * Shared by the benchmarks: a hub in its own process, registries
 * built with the stock git + git-lfs clients, and measuring a command's wall
 * time and peak RSS (VmHWM) in its own process.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const CLI = join(ROOT, 'bin/modelsync.js');
export const MiB = 1 << 20;

export function benchGitEnv(home: string): NodeJS.ProcessEnv {
  mkdirSync(home, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    GIT_CONFIG_GLOBAL: join(home, '.gitconfig'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    LANG: 'C',
    MODELSYNC_LOG_LEVEL: 'warn',
  };
  writeFileSync(join(home, '.gitconfig'), '[user]\n\tname = Bench\n\temail = bench@example.test\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n');
  run('git', ['lfs', 'install', '--skip-repo'], { cwd: home, env });
  return env;
}

export function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export interface HubProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * `modelsync serve` on loopback; without a tokens file it answers loopback clients only.
 * MODELSYNC_BENCH_HUB_NODE_ARGS adds node flags to the hub alone (`--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its time goes);
 * MODELSYNC_BENCH_HUB_CLI runs another checkout's hub (its bin/modelsync.js), to compare before and after a change side by side.
 */
export function startHub(data: string, tokens?: string): Promise<HubProcess> {
  const nodeArgs = (process.env.MODELSYNC_BENCH_HUB_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [...nodeArgs, process.env.MODELSYNC_BENCH_HUB_CLI ?? CLI, 'serve', '--data', data, '--listen', '127.0.0.1:0', ...(tokens ? ['--tokens', tokens] : [])];
  const child = spawn(process.execPath, args, { env: { ...process.env, MODELSYNC_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
  return whenListening(child, 'hub');
}

/** A spawned `modelsync serve`, once it has said where it listens. */
export function whenListening(child: ChildProcess, what: string): Promise<HubProcess> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = /listening on (http:\/\/[^\s"]+)/.exec(out);
      if (m) resolve({ child, url: m[1]!.replace(/\/$/, ''), stop: async () => (child.kill('SIGTERM'), exited) });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before listening: ${out}`)));
  });
}

/** Peak resident set of a running process (its VmHWM), in KiB. */
export function vmHwmKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Write `bytes` of incompressible content; returns its sha256. */
export async function makeFile(path: string, bytes: number, seed: number): Promise<string> {
  mkdirSync(dirname(path), { recursive: true });
  const hash = createHash('sha256');
  const block = randomFillSync(Buffer.alloc(Math.min(MiB, bytes)));
  const out = createWriteStream(path);
  let left = bytes;
  for (let i = 0; left > 0; i++) {
    const n = Math.min(block.length, left);
    block.writeUInt32LE(i, 0);
    block.writeUInt32LE(seed, 4);
    const chunk = Buffer.from(block.subarray(0, n));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    left -= n;
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return hash.digest('hex');
}

export function manifestYaml(model: string, version: string, files: Array<{ name: string; sha256: string; size: number }>): string {
  return [`name: ${model}`, `version: "${version}"`, 'framework: bench', 'files:', ...files.map((f) => `  - {name: ${f.name}, sha256: ${f.sha256}, size: ${f.size}}`), ''].join('\n');
}

export interface Measured {
  ms: number;
  /** Peak resident set of the process and its waited-for children, in KiB. */
  peakKiB: number;
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Run a command in its own process: wall time, and peak RSS from GNU time's
 * %M (max RSS of the process tree) or, without /usr/bin/time, by sampling
 * the process's VmHWM.
 */
export async function measure(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Measured> {
  const gnuTime = existsSync('/usr/bin/time');
  const marker = '__PEAK_KIB__';
  const [file, argv] = gnuTime ? ['/usr/bin/time', ['-f', `${marker}%M`, cmd, ...args]] : [cmd, args];
  const started = performance.now();
  const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let sampled = 0;
  const timer = gnuTime
    ? undefined
    : setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) sampled = Math.max(sampled, Number(m[1]));
        } catch {
          /* exited */
        }
      }, 10);
  const status = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const ms = performance.now() - started;
  if (timer) clearInterval(timer);
  let peakKiB = sampled;
  if (gnuTime) {
    const i = stderr.lastIndexOf(marker);
    peakKiB = Number(stderr.slice(i + marker.length).trim().split('\n')[0]);
    stderr = stderr.slice(0, i);
  }
  return { ms, peakKiB, status, stdout, stderr };
}
