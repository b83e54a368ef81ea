/**
 * The pull schedule: the site's cron expression (or agent.yaml's) with a
 * random delay per run, so a fleet sharing one schedule does not hit the
 * registry in the same second. node-cron parses and matches the expression;
 * the timing runs on the injected Clock, so tests move time by hand.
 */
import cron from 'node-cron';
import { ConfigError } from '../errors.ts';
import { cronProblem } from '../util/cron.ts';
import { cronFloorProblem } from '../util/cron-floor.ts';
import { nextCronRun } from '../util/cron-next.ts';
import { MAX_TIMEOUT_MS, type Clock, type TimerHandle } from './clock.ts';

export const DEFAULT_SCHEDULE = '*/15 * * * *';

/** Checks an expression, naming the field that is wrong. */
export function checkCron(expression: string, where = 'schedule'): void {
  const problem = cronProblem(expression);
  if (problem) throw new ConfigError(`${where}: ${JSON.stringify(expression)} is not a valid cron expression (${problem})`, { expression });
  const v = cron.validateDetailed(expression);
  if (!v.valid) {
    const why = v.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join('; ');
    throw new ConfigError(`${where}: ${JSON.stringify(expression)} is not a valid cron expression (${why})`, { expression });
  }
  const floor = cronFloorProblem(expression);
  if (floor) throw new ConfigError(`${where}: ${floor}`, { expression });
}


export interface CronTriggerOptions {
  expression: string;
  /** Up to this much random delay after each slot. */
  jitterMs: number;
  clock: Clock;
  random?: () => number;
  onFire(slot: number): void;
}

/** Fires `onFire` once per matching slot, `jitter` after it; re-arms itself. */
export class CronTrigger {
  private expression: string;
  private handle?: TimerHandle;
  private running = false;
  private slot: number | null = null;
  private fireAt: number | null = null;

  constructor(private readonly opts: CronTriggerOptions) {
    checkCron(opts.expression);
    this.expression = opts.expression;
  }

  get schedule(): string {
    return this.expression;
  }

  /** When the next pass will start (slot plus jitter), for /status. */
  get nextRunAt(): number | null {
    return this.fireAt;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm(this.opts.clock.now());
  }

  stop(): void {
    this.running = false;
    this.opts.clock.clearTimeout(this.handle);
    this.handle = undefined;
    this.fireAt = null;
  }

  /** The site file's schedule changed: re-plan from now. */
  setExpression(expression: string): void {
    if (expression === this.expression) return;
    checkCron(expression);
    this.expression = expression;
    if (this.running) {
      this.opts.clock.clearTimeout(this.handle);
      this.arm(this.opts.clock.now());
    }
  }

  private arm(after: number): void {
    const slot = nextCronRun(this.expression, after);
    this.slot = slot;
    if (slot === null) {
      this.fireAt = null;
      return;
    }
    const jitter = Math.floor((this.opts.random ?? Math.random)() * this.opts.jitterMs);
    this.fireAt = slot + jitter;
    this.wait();
  }

  private wait(): void {
    const { clock } = this.opts;
    const delay = this.fireAt! - clock.now();
    // Long waits are re-armed in steps: platform timers overflow past ~24.8 days.
    this.handle = clock.setTimeout(() => {
      if (!this.running) return;
      if (clock.now() < this.fireAt!) return this.wait();
      const slot = this.slot!;
      // Next slot strictly after this one; if the process slept through several, skip to now.
      this.arm(Math.max(slot, clock.now() - this.opts.jitterMs));
      this.opts.onFire(slot);
    }, Math.min(Math.max(0, delay), MAX_TIMEOUT_MS));
  }
}

export { nextCronRun };
