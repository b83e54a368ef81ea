/**
 * When and how long to wait before trying again: exponential backoff with
 * full jitter (AWS architecture blog, "Exponential Backoff and Jitter"), so a
 * fleet of sites that lost the hub at the same moment does not come back in
 * lock-step. A server's Retry-After wins over our own guess.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { ModelsyncError, NetworkError } from '../errors.ts';

export interface RetryPolicy {
  /** Retries after the first attempt (so `retries + 1` attempts in all). */
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After we honour; a server asking for more gets this. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 5 * 60_000 };

/** Full jitter: uniform in [0, min(max, base·2^attempt)]. `attempt` counts from 0. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** The delay before the next attempt after `err`, honouring a Retry-After it carries. */
export function retryDelay(err: unknown, attempt: number, policy: RetryPolicy): number {
  const jitter = backoffDelay(attempt, policy);
  const after = err instanceof ModelsyncError ? err.data.retryAfterMs : undefined;
  if (typeof after === 'number' && after > 0) return Math.min(Math.max(after, jitter), policy.maxRetryAfterMs);
  return jitter;
}

/** `Retry-After: <seconds>` or `Retry-After: <HTTP date>` in milliseconds from now. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Network errors, timeouts, 408, 429 and 5xx clear by themselves; any other
 * 4xx, a checksum failure or a missing object will not change by asking again.
 */
export function isRetryable(err: unknown): boolean {
  if (isAbort(err)) return false;
  if (err instanceof NetworkError) return err.retry !== 'stalling';
  if (err instanceof ModelsyncError) return false;
  return true;
}

export function isAbort(err: unknown): boolean {
  return (err as Error | undefined)?.name === 'AbortError';
}

/** Sleep that ends early (rejecting with the abort reason) when `signal` fires. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) {
    signal?.throwIfAborted();
    return;
  }
  await delay(ms, undefined, { signal });
}

export interface RetryHooks {
  signal?: AbortSignal;
  /** Epoch ms (the pass deadline): a wait that would end after it is not started; the error is thrown instead. */
  deadline?: number;
  /** Called before each wait, for a log line. */
  onRetry?(err: unknown, attempt: number, delayMs: number): void;
}

/** Run `fn` until it succeeds, fails with a non-retryable error, or retries run out. */
export async function withRetries<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy, hooks: RetryHooks = {}): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (hooks.signal?.aborted) throw hooks.signal.reason;
      if (!isRetryable(err) || attempt >= policy.retries) throw err;
      const wait = retryDelay(err, attempt, policy);
      if (beyondDeadline(wait, hooks.deadline)) throw err;
      hooks.onRetry?.(err, attempt, wait);
      await sleep(wait, hooks.signal);
    }
  }
}

/** Whether waiting `ms` from now would end after `deadline` (epoch ms). */
export function beyondDeadline(ms: number, deadline: number | undefined, now = Date.now()): boolean {
  return deadline !== undefined && now + ms > deadline;
}

/** A 429 or 503: the server asked us to slow down (with or without Retry-After). */
export function isThrottle(err: unknown): boolean {
  const status = err instanceof ModelsyncError ? err.data.status : undefined;
  return status === 429 || status === 503;
}
