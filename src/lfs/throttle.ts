/**
 * A bandwidth cap shared by every transfer of a fetcher: a token bucket that
 * may go into debt. A transfer takes tokens for each chunk it received and
 * waits until the debt is paid back, so concurrent transfers queue fairly and
 * the aggregate rate over any window T stays below `burst + rate·T`. Waiting
 * before reading the next chunk leaves the socket unread, so TCP flow control
 * slows the sender: the cap holds on the wire, not just on disk.
 */
import { sleep } from './retry.ts';

export class TokenBucket {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  private tokens: number;
  private last: number;

  constructor(bytesPerSecond: number, burstBytes?: number, private readonly now: () => number = () => performance.now()) {
    if (!(bytesPerSecond > 0)) throw new RangeError('bandwidth cap must be positive');
    this.bytesPerSecond = bytesPerSecond;
    // A fifth of a second of traffic, within [16 KiB, 1 MiB]: small enough to keep the
    // rate honest over short windows, large enough not to wake up for every packet.
    this.burstBytes = burstBytes ?? Math.min(Math.max(bytesPerSecond / 5, 16 * 1024), 1024 * 1024);
    this.tokens = this.burstBytes;
    this.last = this.now();
  }

  /** Account for `n` bytes; resolves when the cap allows them. */
  async take(n: number, signal?: AbortSignal): Promise<void> {
    const t = this.now();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((t - this.last) / 1000) * this.bytesPerSecond);
    this.last = t;
    this.tokens -= n;
    if (this.tokens < 0) await sleep(Math.ceil((-this.tokens / this.bytesPerSecond) * 1000), signal);
  }
}

/** `bandwidth.limit_kbps` is kilobits per second (1 kbps = 1000 bit/s), as network caps usually are. */
export function bucketForKbps(limitKbps: number | undefined): TokenBucket | undefined {
  if (limitKbps === undefined || limitKbps === null || !(limitKbps > 0)) return undefined;
  return new TokenBucket((limitKbps * 1000) / 8);
}
