import { describe, expect, it } from 'vitest';
import { PassQueue, QueueClosedError, type Trigger } from './queue.ts';

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const t = (source: Trigger['source'], detail?: string): Trigger => ({ source, detail, at: 0 });

describe('PassQueue', () => {
  it('runs a burst of triggers as one running pass plus one more', async () => {
    const gates: Array<ReturnType<typeof deferred>> = [];
    const runs: Trigger[][] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const q = new PassQueue(async (triggers) => {
      runs.push(triggers);
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      const g = deferred();
      gates.push(g);
      await g.promise;
      concurrent--;
      return runs.length;
    });
    const first = q.request(t('start'));
    await Promise.resolve();
    const burst = Array.from({ length: 10 }, (_, i) => q.request(t('event', `push ${i}`)));
    expect(q.running).toBe(true);
    expect(q.queued).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(runs).toHaveLength(1);
    gates[0]!.resolve();
    expect(await first).toBe(1);
    await new Promise((r) => setImmediate(r));
    // The ten triggers share the second pass, which saw every one of them.
    expect(runs).toHaveLength(2);
    expect(runs[1]!.map((x) => x.detail)).toEqual(Array.from({ length: 10 }, (_, i) => `push ${i}`));
    gates[1]!.resolve();
    const results = await Promise.all(burst);
    expect(new Set(results)).toEqual(new Set([2]));
    expect(q.coalesced).toBe(9);
    expect(q.passes).toBe(2);
    expect(maxConcurrent).toBe(1);
    await q.idle();
    expect(q.running).toBe(false);
  });

  it('a trigger after a pass finished starts a new pass', async () => {
    let n = 0;
    const q = new PassQueue(async () => ++n);
    expect(await q.request(t('schedule'))).toBe(1);
    expect(await q.request(t('webhook'))).toBe(2);
  });

  it('close waits for the running pass and drops the queued one', async () => {
    const g = deferred();
    let finished = false;
    const q = new PassQueue(async () => {
      await g.promise;
      finished = true;
    });
    const running = q.request(t('start'));
    await Promise.resolve();
    const queued = q.request(t('event'));
    const closing = q.close();
    await expect(queued).rejects.toBeInstanceOf(QueueClosedError);
    g.resolve();
    await closing;
    await running;
    expect(finished).toBe(true);
    await expect(q.request(t('event'))).rejects.toBeInstanceOf(QueueClosedError);
  });

  it('a failing pass rejects its requesters and does not block the next', async () => {
    let n = 0;
    const q = new PassQueue(async () => {
      n++;
      if (n === 1) throw new Error('boom');
      return n;
    });
    await expect(q.request(t('start'))).rejects.toThrow('boom');
    expect(await q.request(t('retry'))).toBe(2);
  });
});
