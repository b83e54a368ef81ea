import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../test/agent/helpers/manual-clock.ts';
import { CronTrigger, checkCron, nextCronRun } from './schedule.ts';

const local = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number => new Date(y, mo - 1, d, h, mi, s).getTime();

describe('nextCronRun', () => {
  it('finds the next slot of a step expression', () => {
    expect(nextCronRun('*/15 * * * *', local(2025, 3, 10, 9, 7, 30))).toBe(local(2025, 3, 10, 9, 15));
    // Strictly after: a time exactly on a slot moves to the next one.
    expect(nextCronRun('*/15 * * * *', local(2025, 3, 10, 9, 15))).toBe(local(2025, 3, 10, 9, 30));
    expect(nextCronRun('*/15 * * * *', local(2025, 3, 10, 23, 50))).toBe(local(2025, 3, 11, 0, 0));
  });

  it('handles day-of-week, day-of-month, months and seconds', () => {
    // 2025-03-10 is a Monday; the next Saturday 03:30 is the 15th.
    expect(nextCronRun('30 3 * * 6', local(2025, 3, 10, 12))).toBe(local(2025, 3, 15, 3, 30));
    expect(nextCronRun('0 0 29 2 *', local(2025, 3, 1))).toBe(local(2028, 2, 29));
    expect(nextCronRun('*/20 * * * * *', local(2025, 3, 10, 9, 0, 5))).toBe(local(2025, 3, 10, 9, 0, 20));
    expect(nextCronRun('0 0 L * *', local(2025, 2, 3))).toBe(local(2025, 2, 28));
  });

  it('rejects invalid expressions with the field named', () => {
    expect(() => checkCron('61 * * * *')).toThrow(/minute/);
    expect(() => checkCron('every day')).toThrow(/not a valid cron expression/);
  });
});

describe('CronTrigger with a controlled clock', () => {
  it('fires once per slot, after the jitter, and re-arms', async () => {
    const clock = new ManualClock(local(2025, 3, 10, 9, 7));
    const fired: Array<{ slot: number; at: number }> = [];
    const randoms = [0.5, 0.1, 0.9];
    const trigger = new CronTrigger({
      expression: '*/15 * * * *',
      jitterMs: 30_000,
      clock,
      random: () => randoms.shift() ?? 0,
      onFire: (slot) => fired.push({ slot, at: clock.now() }),
    });
    trigger.start();
    expect(trigger.nextRunAt).toBe(local(2025, 3, 10, 9, 15) + 15_000);
    await clock.advanceTo(local(2025, 3, 10, 9, 15, 14));
    expect(fired).toEqual([]);
    await clock.advanceTo(local(2025, 3, 10, 9, 15, 15));
    expect(fired).toEqual([{ slot: local(2025, 3, 10, 9, 15), at: local(2025, 3, 10, 9, 15, 15) }]);
    await clock.advanceTo(local(2025, 3, 10, 9, 59));
    expect(fired.map((f) => f.at)).toEqual([
      local(2025, 3, 10, 9, 15, 15),
      local(2025, 3, 10, 9, 30, 3),
      local(2025, 3, 10, 9, 45, 27),
    ]);
    trigger.stop();
    await clock.advance(3600_000);
    expect(fired).toHaveLength(3);
    expect(clock.pending()).toEqual([]);
  });

  it('re-plans when the schedule changes', async () => {
    const clock = new ManualClock(local(2025, 3, 10, 9, 7));
    const fired: number[] = [];
    const trigger = new CronTrigger({ expression: '0 * * * *', jitterMs: 0, clock, onFire: () => fired.push(clock.now()) });
    trigger.start();
    expect(trigger.nextRunAt).toBe(local(2025, 3, 10, 10, 0));
    trigger.setExpression('*/5 * * * *');
    expect(trigger.nextRunAt).toBe(local(2025, 3, 10, 9, 10));
    await clock.advanceTo(local(2025, 3, 10, 9, 20));
    expect(fired).toEqual([local(2025, 3, 10, 9, 10), local(2025, 3, 10, 9, 15), local(2025, 3, 10, 9, 20)]);
    trigger.stop();
  });

  it('spreads a fleet over the jitter window', () => {
    const clock = new ManualClock(local(2025, 3, 10, 9, 7));
    const times = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const t = new CronTrigger({ expression: '*/15 * * * *', jitterMs: 30_000, clock, onFire: () => {} });
      t.start();
      const at = t.nextRunAt!;
      expect(at).toBeGreaterThanOrEqual(local(2025, 3, 10, 9, 15));
      expect(at).toBeLessThan(local(2025, 3, 10, 9, 15, 30));
      times.add(at);
      t.stop();
    }
    expect(times.size).toBeGreaterThan(5);
  });
});
