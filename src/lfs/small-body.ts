/**
 * A small object fetched into memory, verified, and asked for compressed.
 *
 * Chunk indexes are JSON text (a hex sha256 per chunk) and are fetched next
 * to every delta and whole download: on a 1 MiB upgrade of a 100 MiB file
 * the index was most of the bytes over rsync's. Sent with gzip they shrink to
 * about 53%. Model files never come this way: they are incompressible and
 * are written to disk as they arrive (download.ts).
 *
 * `Accept-Encoding: gzip` is a request; servers that ignore it (S3, most LFS
 * hosts) send the bytes as they are, which is just as good.
 */
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { ChecksumError, NetworkError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { type AttemptContext, openHref, statusFailure } from './download.ts';
import { fromIncoming } from './body.ts';
import { describeUrl } from './scrub.ts';
import type { LfsObject } from './types.ts';

/** The bytes of `obj`, checked against its size and sha256; at most `obj.size` bytes are ever held decoded. */
export async function fetchSmallObject(ctx: AttemptContext, obj: LfsObject, action: LfsAction): Promise<Buffer> {
  const opened = await openHref(ctx, action, undefined, { 'accept-encoding': 'gzip' });
  const where = describeUrl(opened.url);
  const res = fromIncoming(opened.res, where, ctx.transport.timeoutMs);
  if (res.statusCode !== 200) throw await statusFailure(ctx, obj, action, res, opened.url);
  const encoding = String(res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'gzip' && encoding !== 'identity') {
    res.destroy();
    throw new NetworkError(`${where} sent ${obj.oid.slice(0, 12)} with Content-Encoding ${encoding}, which was not asked for`, { url: where });
  }
  // gzip adds a few bytes to what does not compress; anything past that is not this object.
  const limit = encoding === 'gzip' ? obj.size + Math.ceil(obj.size / 1000) + 1024 : obj.size;
  const parts: Buffer[] = [];
  let got = 0;
  let over = false;
  try {
    await res.pipe((b) => {
      got += b.length;
      ctx.counters.networkBytes += b.length;
      if (got > limit) {
        over = true;
        return false;
      }
      parts.push(b);
      return ctx.bucket?.take(b.length, ctx.signal);
    });
  } catch (err) {
    throw new NetworkError(`download of ${obj.oid.slice(0, 12)} from ${where} failed: ${(err as Error).message}`, { url: where }, err);
  }
  if (over) throw new ChecksumError(`${where} sends more than ${limit} bytes for ${obj.oid} (${obj.size} bytes)`, { oid: obj.oid, expectedSize: obj.size });
  let bytes = Buffer.concat(parts, got);
  if (encoding === 'gzip') {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: obj.size + 1 });
    } catch (err) {
      throw new ChecksumError(`${where} sent ${obj.oid.slice(0, 12)} as gzip that does not decode to ${obj.size} bytes: ${(err as Error).message}`, { oid: obj.oid, expectedSize: obj.size });
    }
  }
  if (bytes.length !== obj.size) {
    throw new ChecksumError(`${where} sent ${bytes.length} bytes for ${obj.oid}, expected ${obj.size}`, { oid: obj.oid, expectedSize: obj.size, actualSize: bytes.length });
  }
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== obj.oid) throw new ChecksumError(`object from ${where} hashes to ${actual}, not ${obj.oid}`, { oid: obj.oid, expectedSize: obj.size, actualSize: bytes.length });
  return bytes;
}
