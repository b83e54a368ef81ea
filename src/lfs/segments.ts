/**
 * Running the helper range requests of a split download (ranges.ts): each
 * segment is one `Range: bytes=a-b` GET whose body is written at its offset
 * into the shared .part, with the trailer kept up to date. The first helper
 * to fail stops the others (and the first stream) through the attempt's
 * AbortController; what each got so far stays recorded for the next attempt.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync } from 'node:fs';
import { ChecksumError, NetworkError } from '../errors.ts';
import type { LfsAction } from './batch.ts';
import { bodyError, openBody, writeAt } from './body.ts';
import { type AttemptContext, hashFile, parseContentRange, removePart, statusFailure } from './download.ts';
import { dropTrailer, type Segment, writeTrailer } from './ranges.ts';
import { describeUrl } from './scrub.ts';
import type { LfsObject } from './types.ts';

/** Rewrite the trailer after this much progress, so a kill loses little. */
const TRAILER_EVERY = 8 << 20;

export interface SegmentRun {
  /** Bytes written by the first stream (its segment is segments[0], updated by the caller). */
  progress(n: number): void;
  /** Stop everything, record progress, close the file; resolves with the error that caused it all. */
  abort(err: unknown): Promise<unknown>;
  readonly done: Promise<void>;
  readonly fd: number;
  readonly part: string;
  readonly obj: LfsObject;
}

/**
 * Start a helper for every unfinished segment except, when `live` is given,
 * `segments[0]`, which the caller's first stream is filling.
 */
export function startSegments(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string, fd: number, segments: Segment[], local: AbortController, live = true): SegmentRun {
  let sinceTrailer = 0;
  let closed = false;
  let firstError: unknown;
  const written = (): number => segments[0]!.start + segments.reduce((n, s) => n + (s.pos - s.start), 0);
  const save = (): void => {
    if (!closed) writeTrailer(fd, obj.size, segments);
  };
  const progress = (n: number): void => {
    sinceTrailer += n;
    if (sinceTrailer >= TRAILER_EVERY) {
      sinceTrailer = 0;
      save();
    }
    ctx.onProgress?.({ oid: obj.oid, bytes: written(), size: obj.size });
  };
  // Recorded before any helper writes a byte: a .part with holes always has a trailer.
  save();
  const helpers = segments.filter((s, i) => !(live && i === 0) && s.pos < s.end);
  const done = Promise.all(
    helpers.map((s) =>
      fetchSegment(ctx, obj, action, part, fd, s, progress).catch((err: unknown) => {
        firstError ??= err;
        local.abort(err);
        throw err;
      }),
    ),
  ).then(() => undefined);
  done.catch(() => {});
  const settled = done.then(
    () => undefined,
    () => undefined,
  );
  return {
    fd,
    part,
    obj,
    progress,
    done,
    async abort(err) {
      firstError ??= err;
      if (!local.signal.aborted) local.abort(err);
      await Promise.allSettled(helpers.map(() => settled));
      try {
        save();
      } finally {
        closed = true;
        closeSync(fd);
      }
      return firstError;
    },
  };
}

/** Wait for the helpers, then hash bytes `[from, size)` from disk into `hash` and finish: verified, trailer dropped. */
export async function finishSegments(run: SegmentRun, hash: Hash, from: number): Promise<void> {
  const { obj, part, fd } = run;
  try {
    await run.done;
  } catch (err) {
    throw await run.abort(err);
  }
  try {
    await hashFile(part, hash, from, obj.size);
  } catch (err) {
    throw await run.abort(err);
  }
  const digest = hash.digest('hex');
  if (digest !== obj.oid) {
    closeSync(fd);
    await removePart(part);
    throw new ChecksumError(`checksum mismatch for ${obj.oid}: bytes fetched in parallel ranges hash to ${digest}`, { oid: obj.oid, actual: digest, expectedSize: obj.size });
  }
  try {
    dropTrailer(fd, obj.size);
  } finally {
    closeSync(fd);
  }
}

async function fetchSegment(ctx: AttemptContext, obj: LfsObject, action: LfsAction, part: string, fd: number, seg: Segment, progress: (n: number) => void): Promise<void> {
  const asked = seg.pos;
  const { res, url } = await openBody(ctx, action, `bytes=${seg.pos}-${seg.end - 1}`, true);
  const where = describeUrl(url);
  if (res.statusCode !== 206) {
    if (res.statusCode === 200 || res.statusCode === 416) {
      res.destroy();
      throw new NetworkError(`${where} answered a range request with ${res.statusCode}; downloading in one stream`, { url: where, rangesRefused: true });
    }
    throw await statusFailure(ctx, obj, action, res, url);
  }
  const range = parseContentRange(res.headers['content-range']);
  // Exactly the range, or from its start to the end of the object (both allowed by RFC 9110).
  if (!range || range.start !== seg.pos || range.end < seg.end - 1 || (range.total !== undefined && range.total !== obj.size)) {
    res.destroy();
    throw new NetworkError(`${where} answered Range bytes=${seg.pos}-${seg.end - 1} with Content-Range ${String(res.headers['content-range'])}; downloading in one stream`, {
      url: where,
      rangesRefused: true,
    });
  }
  try {
    await res.pipe((chunk) => {
      const n = Math.min(chunk.length, seg.end - seg.pos);
      const b = n === chunk.length ? chunk : chunk.subarray(0, n);
      writeAt(fd, b, seg.pos);
      seg.pos += n;
      ctx.counters.networkBytes += n;
      progress(n);
      if (seg.pos >= seg.end) return false;
      if (ctx.bucket) return ctx.bucket.take(n, ctx.signal);
    });
  } catch (err) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw bodyError(err, part, obj.oid, where);
  }
  if (seg.pos < seg.end) throw new NetworkError(`range ${asked}-${seg.end - 1} of ${obj.oid.slice(0, 12)} from ${where} ended at byte ${seg.pos}`, { url: where, received: seg.pos - asked });
}

/** A fresh sha256 (for callers that resume a split download from its prefix). */
export const newHash = (): Hash => createHash('sha256');
