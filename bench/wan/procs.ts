/**
 * The processes of the WAN benchmark, all started inside its namespace by
 * driver.ts: the hub, the delay proxy, and the site agent. Each is its own
 * process (as an operator runs them), so the proxy's timers never wait on the
 * agent's event loop. Every one is killed by its pid in `stopAll`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { CLI, ROOT } from '../common.ts';
import { HUB, PROXY } from './netns.ts';

const started = new Set<ChildProcess>();

/** Resolves once `child`'s output matches `re` (or rejects when it exits first / after `ms`). */
function waitFor(child: ChildProcess, re: RegExp, what: string, ms = 60_000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${ms} ms: ${out.slice(-2000)}`)), ms);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
        resolve(m);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready: ${out.slice(-2000)}`));
    });
  });
}

function track(child: ChildProcess): ChildProcess {
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}

export async function startHub(data: string, logDir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = track(spawn(process.execPath, [CLI, 'serve', '--data', data, '--listen', `${HUB.host}:${HUB.port}`], {
    env: { ...process.env, MODELSYNC_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const log = createWriteStream(join(logDir, 'hub.log'));
  child.stdout!.pipe(log);
  child.stderr!.pipe(log, { end: false });
  await waitFor(child, /listening on http/, 'modelsync serve');
  return { url: `http://${HUB.host}:${HUB.port}`, child };
}

export interface ProxyProcess {
  url: string;
  /** Reset every connection; resolves with how many. */
  cut(): Promise<number>;
  /** Every open connection goes silently dead (the link lost its NAT state); resolves with how many. */
  silence(): Promise<number>;
  stats(): Promise<{ bytesDown: number; bytesUp: number; connections: number }>;
}

export async function startProxy(rttMs: number, windowBytes?: number): Promise<ProxyProcess> {
  const args = ['--import', 'tsx', join(ROOT, 'bench/wan/delay-proxy.ts'), '--listen', `${PROXY.host}:${PROXY.port}`, '--upstream', `${HUB.host}:${HUB.port}`, '--rtt', String(rttMs)];
  if (windowBytes) args.push('--window', String(windowBytes));
  const child = track(spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
  await waitFor(child, /"listening"/, 'delay proxy');
  const ask = (cmd: string, key: string): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      let buf = '';
      const onData = (d: Buffer): void => {
        buf += d.toString();
        for (const line of buf.split('\n')) {
          if (!line.includes(`"${key}"`)) continue;
          child.stdout!.off('data', onData);
          resolve(JSON.parse(line) as Record<string, unknown>);
          return;
        }
      };
      child.stdout!.on('data', onData);
      child.stdin!.write(`${cmd}\n`);
    });
  return {
    url: `http://${PROXY.host}:${PROXY.port}`,
    cut: async () => (await ask('cut', 'cut')).cut as number,
    silence: async () => (await ask('silence', 'silence')).silence as number,
    stats: async () => (await ask('stats', 'stats')).stats as { bytesDown: number; bytesUp: number; connections: number },
  };
}

/** `modelsync agent --config <file>`; its log goes to `<logDir>/agent-<tag>.log`. */
export async function startAgent(config: string, logDir: string, tag: string): Promise<ChildProcess> {
  const child = track(spawn(process.execPath, [CLI, 'agent', '--config', config], {
    env: { ...process.env, MODELSYNC_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const log = createWriteStream(join(logDir, `agent-${tag}.log`));
  child.stdout!.pipe(log);
  child.stderr!.pipe(log, { end: false });
  await waitFor(child, /agent listening/, 'modelsync agent');
  return child;
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...started].map(stop));
}
