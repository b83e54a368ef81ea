/**
 * Health checks after a switch. A service that was just restarted takes a
 * moment to come up, so a check is retried every `interval_s` until it passes
 * or `timeout_s` runs out; only then is the version declared unhealthy.
 */
import { errorMessage } from '../errors.ts';
import { redactUrl } from '../util/redact.ts';
import { redactText } from '../util/redact.ts';
import { requestErrorMessage } from './net-error.ts';
import { sleep, systemClock, type Clock } from './clock.ts';
import { describeResult, httpRequest, runArgv } from './services.ts';
import { checkInfer, type InferSpec } from './health-infer.ts';
import { checkMetricOnce } from './health-metric.ts';
import type { MetricGateSpec } from '../registry/schema.ts';

export interface HealthSpec {
  command?: string[];
  http?: string;
  infer?: InferSpec;
  /** A metric gate: watched for `for` after a switch by soak.ts; here (after a rollback) judged on one answer. */
  metric?: MetricGateSpec;
  timeout_s: number;
  interval_s: number;
}

export interface HealthResult {
  ok: boolean;
  tries: number;
  ms: number;
  /** The last failure (or "healthy"), for the report and the log. */
  message: string;
  /** Cut short by the agent stopping: the check says nothing about the version (the verdict is owed). */
  aborted?: boolean;
}

export interface HealthDeps {
  fetch: typeof fetch;
  clock?: Clock;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

// One try never gets less than this, or a slow-starting check could never pass at the end of the window.
const MIN_TRY_MS = 250;

export async function checkHealth(spec: HealthSpec, deps: HealthDeps): Promise<HealthResult> {
  const clock = deps.clock ?? systemClock;
  if (spec.metric) return checkMetricOnce(spec.metric, { fetch: deps.fetch, clock, signal: deps.signal });
  const started = clock.now();
  const deadline = started + spec.timeout_s * 1000;
  let tries = 0;
  let reason = '';
  for (;;) {
    tries++;
    const budget = Math.max(MIN_TRY_MS, deadline - clock.now());
    const why = await once(spec, budget, deps);
    if (why.message === '') return { ok: true, tries, ms: clock.now() - started, message: 'healthy' };
    // A try cut short by the end of the window says less than a real answer before it.
    if (!(why.timedOut && reason)) reason = why.message;
    if (deps.signal?.aborted) break;
    const left = deadline - clock.now();
    if (left <= 0) break;
    try {
      await sleep(clock, Math.min(spec.interval_s * 1000, left), deps.signal);
    } catch {
      break;
    }
  }
  const ms = clock.now() - started;
  if (deps.signal?.aborted) {
    const why = (deps.signal.reason as { name?: string } | undefined)?.name === 'TimeoutError' ? 'the pass reached its deadline (pass_timeout)' : 'the agent is stopping';
    return { ok: false, aborted: true, tries, ms, message: `cut short after ${(ms / 1000).toFixed(1)} s of ${spec.timeout_s}s: ${why}; the verdict is owed` };
  }
  return { ok: false, tries, ms, message: `${reason || 'not checked'} (${tries} ${tries === 1 ? 'try' : 'tries'} in ${spec.timeout_s}s)` };
}

/** One try: an empty message when healthy, otherwise why not. */
async function once(spec: HealthSpec, budgetMs: number, deps: HealthDeps): Promise<{ message: string; timedOut: boolean }> {
  if (spec.command) {
    try {
      const r = await runArgv(spec.command, { timeoutMs: budgetMs, env: deps.env, signal: deps.signal });
      return { message: r.code === 0 && !r.timedOut ? '' : describeResult(spec.command, r), timedOut: r.timedOut };
    } catch (err) {
      return { message: redactText(errorMessage(err)), timedOut: false };
    }
  }
  if (spec.infer) return checkInfer(spec.infer, budgetMs, deps);
  if (spec.http) {
    try {
      const r = await httpRequest(deps.fetch, spec.http, 'GET', budgetMs, deps.signal);
      return { message: r.status >= 200 && r.status < 300 ? '' : `GET ${redactUrl(spec.http)} answered ${r.status}`, timedOut: false };
    } catch (err) {
      const message = requestErrorMessage(err);
      return { message, timedOut: /timed out/.test(message) };
    }
  }
  return { message: '', timedOut: false };
}
