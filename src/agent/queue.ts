/**
 * One pass at a time, however many triggers arrive. A trigger while a pass
 * runs queues at most one more pass, which covers every trigger that arrived
 * meanwhile: ten pushes in a second cost two passes, not ten, and the last
 * pass always starts after the last trigger, so nothing is missed.
 */
export type TriggerSource = 'start' | 'schedule' | 'event' | 'webhook' | 'watch' | 'pin' | 'selfheal' | 'retry' | 'manual' | 'soak';

export interface Trigger {
  source: TriggerSource;
  /** Free text for logs ("ref refs/heads/main", "models/x/1/a.bin deleted"). */
  detail?: string;
  /** The branch's new tip, when the trigger says (a hub event): lets the pass fetch it without listing refs first. */
  commit?: string;
  /** Clock time the trigger arrived. */
  at: number;
}

interface Waiting<R> {
  triggers: Trigger[];
  resolve(r: R): void;
  reject(e: unknown): void;
  promise: Promise<R>;
}

export class QueueClosedError extends Error {
  constructor() {
    super('the agent is stopping');
  }
}

export class PassQueue<R> {
  private current: Promise<R> | undefined;
  private next: Waiting<R> | undefined;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** Triggers that joined an already queued pass instead of starting one. */
  coalesced = 0;
  passes = 0;

  constructor(private readonly run: (triggers: Trigger[]) => Promise<R>) {}

  get running(): boolean {
    return this.current !== undefined;
  }

  get queued(): boolean {
    return this.next !== undefined;
  }

  /** Ask for a pass; resolves with the result of the pass that covers this trigger. */
  request(trigger: Trigger): Promise<R> {
    if (this.closed) return Promise.reject(new QueueClosedError());
    if (!this.current) return this.start([trigger]);
    if (this.next) {
      this.coalesced++;
      this.next.triggers.push(trigger);
      return this.next.promise;
    }
    let resolve!: (r: R) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<R>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Callers that fire and forget must not turn a failed pass into an unhandled rejection.
    promise.catch(() => {});
    this.next = { triggers: [trigger], resolve, reject, promise };
    return promise;
  }

  /** Stop accepting triggers; wait for the running pass; drop the queued one. */
  async close(): Promise<void> {
    this.closed = true;
    const queued = this.next;
    this.next = undefined;
    queued?.reject(new QueueClosedError());
    await this.current?.catch(() => {});
  }

  /** Resolves when no pass runs and none is queued. */
  idle(): Promise<void> {
    if (!this.current) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private start(triggers: Trigger[]): Promise<R> {
    this.passes++;
    const p = Promise.resolve().then(() => this.run(triggers));
    this.current = p;
    p.catch(() => {}).finally(() => {
      this.current = undefined;
      const queued = this.next;
      this.next = undefined;
      if (queued && !this.closed) {
        this.start(queued.triggers).then(queued.resolve, queued.reject);
        return;
      }
      queued?.reject(new QueueClosedError());
      for (const w of this.idleWaiters.splice(0)) w();
    });
    return p;
  }
}
