/**
 * Time as the agent sees it. Every timer the daemon sets (schedule, jitter,
 * backoff, debounce, verification) goes through a Clock, so tests drive the
 * schedule with a controlled clock instead of waiting for real minutes.
 */
export interface TimerHandle {
  /** Whether the process may exit while this timer is pending. */
  unref?(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, Math.min(ms, MAX_TIMEOUT_MS))),
  clearTimeout: (h) => {
    if (h) clearTimeout(h as NodeJS.Timeout);
  },
};

// setTimeout fires immediately for delays beyond 2^31-1 ms; callers re-arm long waits.
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Resolve after `ms` on `clock`, or reject when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(abortReason(signal!));
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('aborted');
}

/**
 * Exponential backoff with jitter: the n-th retry waits between half and all
 * of min(max, base * 2^n), so a fleet that lost its hub at the same moment
 * does not come back at the same moment.
 */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt; each call grows the ceiling. */
  next(): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
