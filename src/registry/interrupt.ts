/**
 * Ctrl-C (and SIGTERM, SIGHUP) during publish, promote or rollback.
 *
 * Node's default is to die on the spot, which can leave half of a version's
 * files in the working tree, a branch moved without its index, or a
 * temporary file in the LFS cache. Instead the first signal aborts the work
 * at the next safe point: long steps (hashing) stop at once and undo what
 * they did; the short critical section (working tree, commit, branch, index)
 * always runs to its end. A second signal outside that section gives up on
 * the cleanup and dies as Node would have.
 */
import { InterruptedError } from '../errors.ts';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let criticalDepth = 0;

/** Run `fn` to its end whatever signals arrive meanwhile (they are acted on after it). */
export async function critical<T>(fn: () => Promise<T>): Promise<T> {
  criticalDepth++;
  try {
    return await fn();
  } finally {
    criticalDepth--;
  }
}

/**
 * Run `fn` with the process's termination signals turned into an abort of
 * `signal`, whose reason is an InterruptedError naming `what`.
 */
export async function withInterrupts<T>(what: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let received = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    received++;
    if (received === 1) {
      controller.abort(new InterruptedError(`${what} was interrupted (${sig}); nothing was committed and what it had written was removed`, { signal: sig }));
      return;
    }
    if (criticalDepth === 0) {
      remove();
      process.kill(process.pid, sig);
    }
  };
  const remove = (): void => {
    for (const s of SIGNALS) process.off(s, onSignal);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    return await fn(controller.signal);
  } finally {
    remove();
  }
}

/** Throw the abort's InterruptedError if the work was interrupted. */
export function checkInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new InterruptedError('interrupted');
}
