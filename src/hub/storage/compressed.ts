/**
 * Small text objects sent gzip-compressed to clients that ask for it.
 *
 * The chunk index published next to every large file (a JSON list of hex
 * sha256) is fetched by each site on each upgrade; compressed it is about
 * 53% of its size, which is what brought a small delta's bytes within 5% of
 * rsync's (issue 16). Model files are binary and never compressed: an object
 * is a candidate only when it is at most COMPRESS_MAX_BYTES and its first
 * bytes are text. Objects are content-addressed, so the compressed form of
 * an oid never changes and is kept in a small cache: a fleet fetching the
 * same index costs one compression, not one per site.
 */
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';

const gzip = promisify(gzipCb);

export const COMPRESS_MAX_BYTES = 8 * 1024 * 1024;
const SNIFF_BYTES = 4096;
const CACHE_BUDGET_BYTES = 64 * 1024 * 1024;

/** Whether the request's Accept-Encoding admits gzip (`gzip`, `x-gzip` or `*`, with a q-value above zero). */
export function acceptsGzip(req: IncomingMessage): boolean {
  const header = req.headers['accept-encoding'];
  if (typeof header !== 'string') return false;
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    if (name !== 'gzip' && name !== 'x-gzip' && name !== '*') continue;
    const q = params.find((p) => p.startsWith('q='));
    if (q === undefined || Number(q.slice(2)) > 0) return true;
  }
  return false;
}

/** Text as far as compression cares: no NUL and no control bytes other than tab, newline, carriage return. */
export function looksLikeText(head: Buffer): boolean {
  const n = Math.min(head.length, SNIFF_BYTES);
  for (let i = 0; i < n; i++) {
    const b = head[i]!;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
    if (b === 0x7f) return false;
  }
  return true;
}

/** Compressed forms by oid, least recently used dropped first once the budget is spent. */
export class GzipCache {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly budget = CACHE_BUDGET_BYTES) {}

  /** The gzip of `body` (the object `oid`), or null when it does not shrink by a tenth: then the plain bytes are sent. */
  async get(oid: string, body: Buffer): Promise<Buffer | null> {
    const hit = this.entries.get(oid);
    if (hit) {
      this.entries.delete(oid);
      this.entries.set(oid, hit);
      return hit.length === 0 ? null : hit;
    }
    // Level 1: the hex digests that make up an index compress as well as at level 9, at a third of the CPU.
    const packed = await gzip(body, { level: 1 });
    // An empty buffer remembers "not worth it", so the object is not compressed again.
    const kept = packed.length < body.length * 0.9 ? packed : Buffer.alloc(0);
    this.entries.set(oid, kept);
    this.bytes += kept.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(k);
      this.bytes -= v.length;
    }
    return kept.length === 0 ? null : kept;
  }
}
