/**
 * Parallel range requests for one large object.
 *
 * One TCP stream carries at most window/RTT: on a long, lossy link a single
 * stream of a multi-GiB object runs far below the link rate, and each loss
 * halves it again. So the first stream of a download watches itself; when it
 * looks slow for its distance (see `shouldSplit`), or when the operator asked
 * for N streams, the rest of the object is cut into segments, each fetched
 * with its own `Range: bytes=a-b` request and written at its offset into the
 * same `.part` file. The first stream stops where the first helper begins.
 *
 * Which bytes of the `.part` are real is recorded in a 4 KiB trailer written
 * *after* the object's last byte (at offset `size`), checksummed, updated on
 * every split, every few MiB and when an attempt fails. `<oid>.part` stays the
 * one file per object that the store keeps for resuming, and a trailer can
 * never be mistaken for object bytes: a complete download is truncated to
 * `size` only after the whole object hashed to its oid. A resumed download
 * reads the trailer and fetches only the holes.
 *
 * Verification is unchanged: the first stream's bytes are hashed as they
 * arrive, the helpers' bytes are hashed from the file in order once every
 * segment is in (from the page cache; ~0.6 s per GiB with SHA-NI), and
 * nothing is visible until the digest is the oid.
 */
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';

export const TRAILER_BYTES = 4096;
const TRAILER_MAGIC = 'modelsync-ranges/1';
/** Helpers are not started for segments smaller than this. */
export const MIN_SEGMENT_BYTES = 1 << 20;
/** Automatic mode: streams per object, and the conditions for splitting. */
export const AUTO_STREAMS = 4;
const AUTO_MIN_REMAINING = 32 << 20;
const AUTO_MIN_RTT_MS = 20;
const AUTO_WATCH_MS = 1_000;
const AUTO_MIN_ETA_MS = 8_000;
export const MAX_STREAMS = 16;

/** `[start, end)` of the object, of which `[start, pos)` is on disk. */
export interface Segment {
  start: number;
  end: number;
  pos: number;
}

/** `'auto'`, `'off'`, or a fixed number of streams per large object (1 = off). */
export type RangeStreams = 'auto' | 'off' | number;

/**
 * The knob's value from `MODELSYNC_LFS_RANGES` (`auto`, `off`, or 1–16)
 * when the caller gave none. Anything else is ignored: `auto`.
 */
export function rangeStreamsFrom(given: RangeStreams | undefined, env: string | undefined): RangeStreams {
  const v = given ?? env?.trim().toLowerCase();
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'off' || v === 0 || v === '0') return 'off';
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1) return 'auto';
  return n === 1 ? 'off' : Math.min(n, MAX_STREAMS);
}

/**
 * How many streams to use for the rest of an object, asked while its first
 * stream runs; 0 = keep one. A fixed N splits at once. Automatic mode waits
 * a second, then splits into AUTO_STREAMS when the link is far away (the
 * connection or the first answer took ≥ 20 ms) and the rest would still take ≥ 8 s at the rate
 * seen: on a LAN, or for a short download, one stream is as good and cheaper
 * for the server. Never under a bandwidth cap (the cap, not the window, is
 * the limit then).
 */
export function shouldSplit(
  mode: RangeStreams,
  o: { elapsedMs: number; received: number; remaining: number; connectMs?: number; capped: boolean },
): number {
  if (mode === 'off' || o.capped) return 0;
  if (typeof mode === 'number') return o.remaining >= 2 * MIN_SEGMENT_BYTES ? Math.min(mode, Math.floor(o.remaining / MIN_SEGMENT_BYTES)) : 0;
  if (o.elapsedMs < AUTO_WATCH_MS || o.remaining < AUTO_MIN_REMAINING) return 0;
  if (o.connectMs === undefined || o.connectMs < AUTO_MIN_RTT_MS) return 0;
  const rate = o.received / o.elapsedMs; // bytes per ms
  if (rate > 0 && o.remaining / rate < AUTO_MIN_ETA_MS) return 0;
  return AUTO_STREAMS;
}

/** Cut `[from, end)` into `n` segments of whole MiB (the last takes the rest). */
export function cutSegments(from: number, end: number, n: number): Segment[] {
  const each = Math.max(MIN_SEGMENT_BYTES, Math.ceil((end - from) / n / MIN_SEGMENT_BYTES) * MIN_SEGMENT_BYTES);
  const out: Segment[] = [];
  for (let a = from; a < end; a += each) out.push({ start: a, end: Math.min(end, a + each), pos: a });
  return out;
}

/** Write the trailer: what of the `.part` is real. Synchronous, so it is never behind a write it describes. */
export function writeTrailer(fd: number, size: number, segments: readonly Segment[]): void {
  const json = JSON.stringify({ format: TRAILER_MAGIC, size, segments: segments.map((s) => [s.start, s.end, s.pos]) });
  const body = Buffer.alloc(TRAILER_BYTES - 64, 0x20);
  if (Buffer.byteLength(json) > body.length) throw new RangeError('too many segments for the trailer');
  body.write(json, 0, 'utf8');
  const sum = Buffer.from(createHash('sha256').update(body).digest('hex'), 'latin1');
  const all = Buffer.concat([body, sum]);
  let off = 0;
  while (off < all.length) off += writeSync(fd, all, off, all.length - off, size + off);
}

/**
 * The segments recorded in `part`'s trailer, or null when it has none that
 * is intact and for an object of this size. Bytes `[0, segments[0].start)`
 * and each `[start, pos)` are real.
 */
export function readTrailer(part: string, size: number): Segment[] | null {
  let fd: number;
  try {
    fd = openSync(part, 'r');
  } catch {
    return null;
  }
  try {
    const buf = Buffer.alloc(TRAILER_BYTES);
    if (readSync(fd, buf, 0, TRAILER_BYTES, size) !== TRAILER_BYTES) return null;
    const body = buf.subarray(0, TRAILER_BYTES - 64);
    if (buf.subarray(TRAILER_BYTES - 64).toString('latin1') !== createHash('sha256').update(body).digest('hex')) return null;
    const t = JSON.parse(body.toString('utf8').trim()) as { format?: unknown; size?: unknown; segments?: unknown };
    if (t.format !== TRAILER_MAGIC || t.size !== size || !Array.isArray(t.segments) || t.segments.length === 0) return null;
    const segs: Segment[] = [];
    let last = 0;
    for (const s of t.segments as unknown[]) {
      if (!Array.isArray(s) || s.length !== 3 || !s.every((x) => Number.isSafeInteger(x))) return null;
      const [start, end, pos] = s as [number, number, number];
      // In order, inside the object, no overlaps: anything else is not ours.
      if (start < last || end > size || !(start <= pos && pos <= end && start < end)) return null;
      segs.push({ start, end, pos });
      last = end;
    }
    if (last !== size) return null;
    return segs;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** Drop the trailer: the file is now exactly the object. */
export function dropTrailer(fd: number, size: number): void {
  ftruncateSync(fd, size);
}
