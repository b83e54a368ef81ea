/**
 * A counting semaphore with a bounded wait queue, for the hub's costly
 * resources (git processes): past `capacity` a request waits its turn, past
 * `capacity + queue` it is refused at once rather than piling up.
 */
export class Slots {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly capacity: number,
    private readonly queue: number,
  ) {}

  get inUse(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * A release function once a slot is free; null when the queue is full.
   * `gone` (the client hung up while waiting) takes the waiter out of the
   * queue, and the promise then resolves to null as well.
   */
  async acquire(gone?: Promise<void>): Promise<(() => void) | null> {
    if (this.running < this.capacity) return this.grant();
    if (this.waiting.length >= this.queue) return null;
    return new Promise<(() => void) | null>((resolve) => {
      let settled = false;
      const wake = (): void => {
        if (settled) return;
        settled = true;
        resolve(this.grant());
      };
      this.waiting.push(wake);
      void gone?.then(() => {
        if (settled) return;
        settled = true;
        const i = this.waiting.indexOf(wake);
        if (i >= 0) this.waiting.splice(i, 1);
        resolve(null);
      });
    });
  }

  private grant(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.waiting.shift()?.();
    };
  }
}
