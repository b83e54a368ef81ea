/**
 * One upload into S3, streamed through the hub and verified before it shows:
 *
 *   - the body is hashed as it arrives and cut into parts of `partBytes`;
 *     one part is being sent to the store while the next fills, so memory is
 *     two parts whatever the object's size and nothing touches the disk;
 *   - an object that fits in one part is held until its last byte hashed
 *     right, then sent with one PutObject;
 *   - a larger one goes into a multipart upload of its final key, whose
 *     CompleteMultipartUpload is sent only once the sha256 and size matched.
 *     Until then it is no object at all (S3, MinIO, R2 and Ceph RGW list and
 *     serve only completed uploads); on a mismatch, an error or a client that
 *     went away, AbortMultipartUpload drops its parts (a bucket lifecycle rule
 *     catches any the hub could not abort, e.g. when it was killed).
 */
import type { IncomingMessage } from 'node:http';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from '../../log.ts';
import { HttpError } from '../http-util.ts';
import type { ReceiveOptions } from './index.ts';
import { describeS3Error } from './s3-client.ts';
import { UploadMeter, uploadAborted, uploadLimit } from './upload-check.ts';

/** S3's smallest part but the last, and its most parts. */
export const MIN_PART_BYTES = 5 << 20;
const MAX_PARTS = 10_000;

/** Metadata every object gets: content-addressed, so immutable (a CDN in front may cache it for good). */
const OBJECT_META = { ContentType: 'application/octet-stream', CacheControl: 'private, max-age=31536000, immutable' } as const;

export interface PutTarget {
  client: S3Client;
  bucket: string;
  key: string;
  /** Preferred part size; raised when an object would need more than 10,000 parts. */
  partBytes: number;
  logger: Logger;
}

/** Parts big enough that `size` bytes need at most 10,000 of them, in whole MiB. */
export function partSizeFor(size: number, preferred: number): number {
  const needed = Math.ceil(size / MAX_PARTS);
  return Math.max(preferred, MIN_PART_BYTES, Math.ceil(needed / (1 << 20)) * (1 << 20));
}

/** Stream `req` into `t.key`; resolves with the verified size once the object is in place. */
export async function putVerified(t: PutTarget, req: IncomingMessage, oid: string, opts: ReceiveOptions): Promise<number> {
  const limit = uploadLimit(req, opts);
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  const partBytes = partSizeFor(opts.expectedSize ?? declared ?? limit, t.partBytes);
  const meter = new UploadMeter(limit);
  const mp = new Multipart(t);
  // Two buffers in turn: `fill` takes the body while the other may still be on its way to the store.
  let spare: Buffer | null = null;
  let fill: Buffer = Buffer.allocUnsafe(Math.min(partBytes, opts.expectedSize ?? declared ?? partBytes) || 1);
  let filled = 0;
  try {
    try {
      for await (const data of req) {
        let chunk = data as Buffer;
        meter.take(chunk);
        while (chunk.length > 0) {
          if (filled === partBytes) {
            // A full part and more bytes behind it: the object is multipart. Send this part, fill the other buffer.
            const sent = fill;
            await mp.send(sent, filled);
            fill = spare ?? Buffer.allocUnsafe(partBytes);
            spare = sent;
            filled = 0;
          }
          if (fill.length < partBytes && filled + chunk.length > fill.length) {
            // The first buffer was sized for a small declared body; a longer one gets a full part.
            const grown = Buffer.allocUnsafe(partBytes);
            fill.copy(grown, 0, 0, filled);
            fill = grown;
          }
          const n = Math.min(chunk.length, partBytes - filled);
          chunk.copy(fill, filled, 0, n);
          filled += n;
          chunk = chunk.subarray(n);
        }
      }
    } catch (err) {
      if (err instanceof HttpError) throw err;
      if (mp.failure) throw mp.failure;
      throw uploadAborted(err);
    }
    // Every byte is in: the rest is the hub's time with the store, not the client's.
    req.socket?.setTimeout(0);
    meter.verify(oid, opts.expectedSize);
    if (!mp.started) {
      await storeCall(`PutObject ${t.key}`, () => t.client.send(new PutObjectCommand({ Bucket: t.bucket, Key: t.key, Body: fill.subarray(0, filled), ContentLength: filled, ...OBJECT_META })));
    } else {
      if (filled > 0) await mp.send(fill, filled);
      await mp.complete();
    }
    return meter.size;
  } catch (err) {
    await mp.abort();
    throw err;
  }
}

/** The multipart upload of one key: started with its first part, at most one part in flight. */
class Multipart {
  private uploadId: string | undefined;
  private inflight: Promise<void> = Promise.resolve();
  private readonly parts: CompletedPart[] = [];
  /** The store refused a part: what the upload fails with. */
  failure: HttpError | undefined;

  constructor(private readonly t: PutTarget) {}

  get started(): boolean {
    return this.uploadId !== undefined;
  }

  /** Wait for the previous part, then start sending this one (the caller must not touch `buf` until the next send). */
  async send(buf: Buffer, length: number): Promise<void> {
    await this.inflight;
    if (this.failure) throw this.failure;
    const { client, bucket, key } = this.t;
    if (this.uploadId === undefined) {
      const created = await storeCall(`CreateMultipartUpload ${key}`, () => client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...OBJECT_META })));
      if (!created.UploadId) throw new HttpError(502, 'ObjectStoreError', `the object store gave no UploadId for ${key}`);
      this.uploadId = created.UploadId;
    }
    const partNumber = this.parts.length + 1;
    const slot: CompletedPart = { PartNumber: partNumber };
    this.parts.push(slot);
    const uploadId = this.uploadId;
    this.inflight = storeCall(`UploadPart ${partNumber} of ${key}`, () =>
      client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: buf.subarray(0, length), ContentLength: length })),
    ).then(
      (r) => {
        slot.ETag = r.ETag;
      },
      (err: HttpError) => {
        this.failure = err;
      },
    );
  }

  async complete(): Promise<void> {
    await this.inflight;
    if (this.failure) throw this.failure;
    const { client, bucket, key } = this.t;
    await storeCall(`CompleteMultipartUpload ${key}`, () =>
      client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } })),
    );
    this.uploadId = undefined;
  }

  /** Drop the parts sent so far; a store that cannot is left to the bucket's lifecycle rule (logged). */
  async abort(): Promise<void> {
    const uploadId = this.uploadId;
    if (uploadId === undefined) return;
    this.uploadId = undefined;
    await this.inflight;
    const { client, bucket, key, logger } = this.t;
    try {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
    } catch (err) {
      logger.warn({ bucket, key, uploadId, err: describeS3Error(err) }, 'could not abort the multipart upload of a refused object; its parts stay until the bucket lifecycle rule removes incomplete uploads');
    }
  }
}

/** A call to the store; its failure is the hub's 502, with the store's reason. */
async function storeCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw new HttpError(502, 'ObjectStoreError', `the object store refused ${what}: ${describeS3Error(err)}`);
  }
}
