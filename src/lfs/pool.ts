/**
 * Run `worker` over `items` with at most `concurrency` at a time. Workers are
 * expected to record their own failures; a throw (an abort) stops handing out
 * new items and is rethrown once the running ones have settled.
 */
export async function runPool<T>(items: readonly T[], concurrency: number, worker: (item: T, index: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  let firstError: unknown;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length) {
      if (signal?.aborted) {
        failed = true;
        firstError ??= signal.reason;
        return;
      }
      const i = next++;
      try {
        await worker(items[i]!, i);
      } catch (err) {
        if (!failed) firstError = err;
        failed = true;
      }
    }
  };
  const lanes = Math.max(1, Math.min(Math.floor(concurrency) || 1, items.length));
  await Promise.all(Array.from({ length: lanes }, lane));
  if (failed) throw firstError;
}
