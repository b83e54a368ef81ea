import type { Clock, TimerHandle } from '../../../src/agent/clock.ts';

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock that only moves when the test says so. `advance` fires every timer
 * that falls due, in order, letting promise callbacks settle in between, so
 * code that awaits and re-arms timers behaves as it would in real time.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: Pending[] = [];

  constructor(start: Date | number = Date.UTC(2025, 0, 1, 0, 0, 0)) {
    this.t = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const p: Pending = { id: ++this.seq, at: this.t + Math.max(0, ms), fn };
    this.timers.push(p);
    return { id: p.id } as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    const id = (handle as { id?: number } | undefined)?.id;
    this.timers = this.timers.filter((p) => p.id !== id);
  }

  /** Timers still pending, soonest first (for assertions). */
  pending(): number[] {
    return this.timers.map((p) => p.at).sort((a, b) => a - b);
  }

  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((p) => p !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
    await settle();
  }

  async advanceTo(date: Date | number): Promise<void> {
    const at = typeof date === 'number' ? date : date.getTime();
    await this.advance(Math.max(0, at - this.t));
  }
}

/** Let queued promise callbacks and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
