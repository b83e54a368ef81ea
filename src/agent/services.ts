/**
 * Restarting and reloading the services that use models. Commands come from
 * agent.yaml only (never from the registry) and run as an argv with no shell,
 * so no model name or version can be interpreted as shell syntax.
 */
import { spawn } from 'node:child_process';
import { ServiceError, errorMessage } from '../errors.ts';
import { redactText, redactUrl } from '../util/redact.ts';
import { requestErrorMessage } from './net-error.ts';
import type { ServiceSpec } from '../registry/schema.ts';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** The last few KiB of stdout and stderr, for the report. */
  output: string;
  ms: number;
}

const OUTPUT_TAIL = 4096;
// After SIGTERM a service manager gets this long to exit before SIGKILL.
const KILL_GRACE_MS = 2000;

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
}

/** Run argv to completion or until the timeout; never throws for a non-zero exit. */
export function runArgv(argv: readonly string[], opts: RunOptions): Promise<CommandResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const [program, ...args] = argv;
    if (!program) return reject(new ServiceError('empty command'));
    let output = '';
    let timedOut = false;
    const child = spawn(program, args, {
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      // Its own process group, so a timeout also stops whatever the command started.
      detached: true,
    });
    const keep = (d: Buffer): void => {
      output = (output + d.toString('utf8')).slice(-OUTPUT_TAIL);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const killGroup = (sig: NodeJS.Signals): void => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
      killTimer.unref();
    };
    const timer = setTimeout(stop, opts.timeoutMs);
    const onAbort = (): void => stop();
    // An abort listener added to a signal that already fired never runs.
    if (opts.signal?.aborted) stop();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new ServiceError(`cannot run ${program}: ${errorMessage(err)}`, { argv: [...argv] }, err));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal, timedOut, output: output.trim(), ms: Date.now() - started });
    });
  });
}

export function describeResult(argv: readonly string[], r: CommandResult): string {
  const what = argv.join(' ');
  if (r.timedOut) return `${what} timed out after ${r.ms} ms`;
  if (r.signal) return `${what} was killed by ${r.signal}`;
  const tail = r.output ? `: ${lastLines(r.output, 3)}` : '';
  return `${what} exited with ${r.code}${tail}`;
}

function lastLines(text: string, n: number): string {
  return text.split('\n').slice(-n).join(' | ').slice(0, 500);
}

export interface HttpRequestResult {
  status: number;
  ms: number;
}

/** One bounded HTTP request; throws ServiceError on a network error or timeout. */
export async function httpRequest(
  fetchImpl: typeof fetch, url: string, method: string, timeoutMs: number, signal?: AbortSignal,
): Promise<HttpRequestResult> {
  const started = Date.now();
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const res = await fetchImpl(url, { method, signal: combined, redirect: 'manual' });
    // Drain so the connection is released; bodies here are tiny status documents.
    await res.arrayBuffer().catch(() => {});
    return { status: res.status, ms: Date.now() - started };
  } catch (err) {
    const why = timeout.aborted ? `timed out after ${timeoutMs} ms` : requestErrorMessage(err);
    throw new ServiceError(`${method} ${redactUrl(url)}: ${why}`, { url: redactUrl(url) }, err);
  }
}

export interface ServiceActionResult {
  service: string;
  action: 'restart' | 'reload' | 'none';
  ok: boolean;
  message: string;
  ms: number;
}

export interface ServiceRunner {
  fetch: typeof fetch;
  env?: NodeJS.ProcessEnv;
  /** Restart commands get this long before they are killed. */
  restartTimeoutMs?: number;
  signal?: AbortSignal;
}

/** Restart (argv) or reload (HTTP) one service, whichever agent.yaml declares. */
export async function applyService(spec: ServiceSpec, runner: ServiceRunner): Promise<ServiceActionResult> {
  const started = Date.now();
  if (spec.restart) {
    try {
      const r = await runArgv(spec.restart, { timeoutMs: runner.restartTimeoutMs ?? 120_000, env: runner.env, signal: runner.signal });
      const ok = r.code === 0 && !r.timedOut;
      return { service: spec.name, action: 'restart', ok, message: ok ? 'restarted' : describeResult(spec.restart, r), ms: r.ms };
    } catch (err) {
      return { service: spec.name, action: 'restart', ok: false, message: redactText(errorMessage(err)), ms: Date.now() - started };
    }
  }
  if (spec.reload) {
    try {
      const r = await httpRequest(runner.fetch, spec.reload.http, spec.reload.method, runner.restartTimeoutMs ?? 120_000, runner.signal);
      const ok = r.status >= 200 && r.status < 300;
      return { service: spec.name, action: 'reload', ok, message: ok ? 'reloaded' : `${spec.reload.method} ${redactUrl(spec.reload.http)} answered ${r.status}`, ms: r.ms };
    } catch (err) {
      return { service: spec.name, action: 'reload', ok: false, message: redactText(errorMessage(err)), ms: Date.now() - started };
    }
  }
  return { service: spec.name, action: 'none', ok: true, message: 'no restart or reload declared', ms: 0 };
}
