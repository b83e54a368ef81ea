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
import type { IncomingMessage } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { ChecksumError, NetworkError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { type AttemptContext, openHref, statusFailure } from './download.ts';
import { speedFloor } from './body.ts';
import { describeUrl } from './scrub.ts';
import type { LfsObject } from './types.ts';

/** The bytes of `obj`, checked against its size and sha256; at most `obj.size` bytes are ever held decoded. */
export async function fetchSmallObject(ctx: AttemptContext, obj: LfsObject, action: LfsAction): Promise<Buffer> {
  const { res, url } = await openHref(ctx, action, undefined, { 'accept-encoding': 'gzip' });
  const where = describeUrl(url);
  if (res.statusCode !== 200) {
    throw await statusFailure(ctx, obj, action, { statusCode: res.statusCode ?? 0, headers: res.headers, readable: () => res, pipe: () => Promise.resolve(), destroy: () => res.destroy() }, url);
  }
  const encoding = String(res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'gzip' && encoding !== 'identity') {
    res.destroy();
    throw new NetworkError(`${where} sent ${obj.oid.slice(0, 12)} with Content-Encoding ${encoding}, which was not asked for`, { url: where });
  }
  // gzip adds a few bytes to what does not compress; anything past that is not this object.
  const wireLimit = encoding === 'gzip' ? obj.size + Math.ceil(obj.size / 1000) + 1024 : obj.size;
  const body = await readLimited(ctx, res, where, wireLimit, obj);
  let bytes: Buffer = body;
  if (encoding === 'gzip') {
    try {
      bytes = gunzipSync(body, { maxOutputLength: obj.size + 1 });
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

async function readLimited(ctx: AttemptContext, res: IncomingMessage, where: string, limit: number, obj: LfsObject): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  const floor = speedFloor(res, where, ctx.transport.timeoutMs);
  try {
    for await (const chunk of res) {
      const b = chunk as Buffer;
      got += b.length;
      ctx.counters.networkBytes += b.length;
      floor.got(b.length);
      if (got > limit) {
        res.destroy();
        throw new ChecksumError(`${where} sends more than ${limit} bytes for ${obj.oid} (${obj.size} bytes)`, { oid: obj.oid, expectedSize: obj.size });
      }
      if (ctx.bucket) await floor.held(ctx.bucket.take(b.length, ctx.signal));
      parts.push(b);
    }
  } catch (err) {
    if (err instanceof ChecksumError) throw err;
    throw new NetworkError(`download of ${obj.oid.slice(0, 12)} from ${where} failed: ${(err as Error).message}`, { url: where }, err);
  } finally {
    floor.stop();
  }
  return Buffer.concat(parts, got);
}
