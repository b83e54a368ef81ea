/**
 * What every object store checks of an upload, the same way: the declared
 * length against the limit before a byte is read, the running size and
 * sha256 while it streams, and the verdict at the end. The codes are the ones
 * clients and `modelsync_hub_lfs_uploads_rejected_total` already know.
 */
import { createHash, type Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from '../http-util.ts';
import type { ReceiveOptions } from './index.ts';

/** The most bytes this upload may carry; refuses a Content-Length past it before reading the body. */
export function uploadLimit(req: IncomingMessage, opts: ReceiveOptions): number {
  const limit = opts.expectedSize ?? opts.maxBytes;
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw opts.expectedSize === undefined
      ? new HttpError(413, 'PayloadTooLarge', `upload of ${declared} bytes exceeds the object size limit (${limit})`, { Connection: 'close' })
      : new HttpError(422, 'SizeMismatch', `upload of ${declared} bytes does not match the declared size ${limit}`, { Connection: 'close' });
  }
  return limit;
}

/** Counts and hashes the bytes of one upload as they arrive. */
export class UploadMeter {
  size = 0;
  private readonly hash: Hash = createHash('sha256');

  constructor(private readonly limit: number) {}

  /** Account for a chunk; throws PayloadTooLarge once the body runs past the limit. */
  take(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.limit) throw tooLarge(this.limit);
    this.hash.update(chunk);
  }

  /** After the last byte: throws unless the bytes hash to `oid` and have the expected size. */
  verify(oid: string, expectedSize: number | undefined): void {
    const actual = this.hash.digest('hex');
    if (actual !== oid) throw new HttpError(422, 'ChecksumMismatch', `uploaded bytes hash to ${actual}, not ${oid}`);
    if (expectedSize !== undefined && this.size !== expectedSize) {
      throw new HttpError(422, 'SizeMismatch', `uploaded ${this.size} bytes, expected ${expectedSize}`);
    }
  }
}

export function tooLarge(limit: number): HttpError {
  return new HttpError(413, 'PayloadTooLarge', `upload is larger than ${limit} bytes`, { Connection: 'close' });
}

/** A body that stopped before its end (the client went away, the idle timeout cut it). */
export function uploadAborted(err: unknown): HttpError {
  return new HttpError(400, 'UploadAborted', `upload did not complete: ${(err as Error).message}`);
}
