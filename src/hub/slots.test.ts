import { describe, expect, test } from 'vitest';
import { Slots } from './slots.ts';

describe('Slots', () => {
  test('grants up to capacity, queues up to the queue bound, refuses the rest', async () => {
    const slots = new Slots(1, 1);
    const first = await slots.acquire();
    expect(first).not.toBeNull();
    const second = slots.acquire();
    expect(await slots.acquire()).toBeNull();
    expect(slots.queued).toBe(1);
    first!();
    first!(); // a double release frees nothing extra
    const got = await second;
    expect(got).not.toBeNull();
    expect(slots.inUse).toBe(1);
    got!();
    expect(slots.inUse).toBe(0);
  });

  test('a waiter whose client hung up leaves the queue and gets nothing', async () => {
    const slots = new Slots(1, 5);
    const held = (await slots.acquire())!;
    let hangUp!: () => void;
    const waiting = slots.acquire(new Promise<void>((r) => (hangUp = r)));
    expect(slots.queued).toBe(1);
    hangUp();
    expect(await waiting).toBeNull();
    expect(slots.queued).toBe(0);
    held();
    expect(slots.inUse).toBe(0);
  });
});
