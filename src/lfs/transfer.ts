/**
 * What the download and the upload side of the LFS client share: their
 * tuning options and the objects built from them (a transport sized for the
 * concurrency, the retry policy, one bandwidth bucket for all transfers).
 */
import { silentLogger, type Logger } from '../log.ts';
import { HttpTransport } from './http.ts';
import { type RangeStreams, rangeStreamsFrom } from './ranges.ts';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.ts';
import { bucketForKbps, type TokenBucket } from './throttle.ts';

export const DEFAULT_CONCURRENCY = 8;

export interface TransferOptions {
  /** Concurrent transfers (default 8). */
  concurrency?: number;
  /** Bandwidth cap in kilobits per second, shared by all transfers. */
  limitKbps?: number;
  logger?: Logger;
  userAgent?: string;
  /** Retry tuning (tests use short delays). */
  retry?: Partial<RetryPolicy>;
  /** Idle timeout per request in ms (default 30 s). */
  timeoutMs?: number;
  /**
   * Parallel range requests for one large object (docs/lfs.md): 'auto'
   * (default: split when the link is far and the download long), 'off', or
   * N streams per object. Unset: `MODELSYNC_LFS_RANGES`, else 'auto'.
   */
  rangeStreams?: RangeStreams;
  /** Bodies at least this long use the bare wire.ts GET (default 1 MiB). */
  wireMinBytes?: number;
}

export interface Transfer {
  concurrency: number;
  transport: HttpTransport;
  retry: RetryPolicy;
  bucket: TokenBucket | undefined;
  logger: Logger;
  rangeStreams: RangeStreams;
  wireMinBytes: number | undefined;
}

export function transferSetup(opts: TransferOptions): Transfer {
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_CONCURRENCY));
  return {
    concurrency,
    // Room for the batch requests beside the transfers.
    transport: new HttpTransport({ userAgent: opts.userAgent, timeoutMs: opts.timeoutMs, maxSockets: concurrency + 2 }),
    retry: { ...DEFAULT_RETRY, ...opts.retry },
    bucket: bucketForKbps(opts.limitKbps),
    logger: opts.logger ?? silentLogger,
    rangeStreams: rangeStreamsFrom(opts.rangeStreams, process.env.MODELSYNC_LFS_RANGES),
    wireMinBytes: opts.wireMinBytes,
  };
}
