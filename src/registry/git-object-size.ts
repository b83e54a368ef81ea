/**
 * The size of a Git object without reading it. isomorphic-git's readBlob
 * inflates a whole blob into memory, so a multi-GiB file committed as a plain
 * blob (a forgotten .gitattributes line) would exhaust a small site before we
 * could refuse it. Here only the object's header is read: the first bytes of
 * a loose object, or the entry header in a pack (for a delta, the target size
 * at the start of the delta data), found through the pack's .idx (version 2).
 *
 * Returns undefined whenever the layout is not one we read (alternates, an old
 * index version): the caller then falls back to reading the object.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { inflateSync, constants as zlibConstants } from 'node:zlib';

const HEADER_BYTES = 4096;

export async function gitObjectSize(gitdir: string, oid: string): Promise<number | undefined> {
  if (!/^[0-9a-f]{40}$/.test(oid)) return undefined;
  const loose = await looseSize(join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2)));
  if (loose !== undefined) return loose;
  const packDir = join(gitdir, 'objects', 'pack');
  const names = await fsp.readdir(packDir).catch(() => [] as string[]);
  for (const idx of names.filter((n) => n.endsWith('.idx'))) {
    const size = await packedSize(join(packDir, idx), join(packDir, idx.replace(/\.idx$/, '.pack')), oid).catch(() => undefined);
    if (size !== undefined) return size;
  }
  return undefined;
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await fsp.open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Inflate what a truncated zlib stream gives (the header is in its first bytes). */
function inflatePrefix(buf: Buffer): Buffer {
  return inflateSync(buf, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
}

async function looseSize(path: string): Promise<number | undefined> {
  let head: Buffer;
  try {
    head = await readAt(path, 0, HEADER_BYTES);
  } catch {
    return undefined;
  }
  const text = inflatePrefix(head).subarray(0, 64).toString('latin1');
  const m = /^(?:blob|tree|commit|tag) (\d+)\0/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A little-endian base-128 number as git's delta header writes it. */
function deltaVarint(buf: Buffer, at: number): { value: number; next: number } {
  let value = 0;
  let mult = 1;
  let i = at;
  for (;;) {
    const b = buf[i++];
    if (b === undefined) throw new Error('truncated delta header');
    value += (b & 0x7f) * mult;
    mult *= 128;
    if (!(b & 0x80)) return { value, next: i };
  }
}

async function packedSize(idxPath: string, packPath: string, oid: string): Promise<number | undefined> {
  const want = Buffer.from(oid, 'hex');
  const head = await readAt(idxPath, 0, 8 + 256 * 4);
  if (head.readUInt32BE(0) !== 0xff744f63 || head.readUInt32BE(4) !== 2) return undefined;
  const fanout = (i: number): number => (i < 0 ? 0 : head.readUInt32BE(8 + i * 4));
  const n = fanout(255);
  let lo = fanout(want[0]! - 1);
  let hi = fanout(want[0]!) - 1;
  const shaBase = 8 + 256 * 4;
  let index = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const cmp = Buffer.compare(await readAt(idxPath, shaBase + mid * 20, 20), want);
    if (cmp === 0) {
      index = mid;
      break;
    }
    if (cmp < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  if (index < 0) return undefined;
  const offBase = shaBase + n * 24; // after the sha1 table and the crc32 table
  let offset = (await readAt(idxPath, offBase + index * 4, 4)).readUInt32BE(0);
  if (offset & 0x80000000) {
    const large = await readAt(idxPath, offBase + n * 4 + (offset & 0x7fffffff) * 8, 8);
    offset = Number(large.readBigUInt64BE(0));
  }
  const entry = await readAt(packPath, offset, HEADER_BYTES);
  let b = entry[0]!;
  const type = (b >> 4) & 7;
  let size = b & 0x0f;
  let mult = 16;
  let i = 1;
  while (b & 0x80) {
    b = entry[i++]!;
    size += (b & 0x7f) * mult;
    mult *= 128;
  }
  if (type >= 1 && type <= 4) return size;
  if (type === 6) {
    // OFS_DELTA: a base offset in git's own varint, then the zlib'd delta.
    do b = entry[i++]!;
    while (b & 0x80);
  } else if (type === 7) {
    i += 20; // REF_DELTA: the base's object id
  } else {
    return undefined;
  }
  const delta = inflatePrefix(entry.subarray(i));
  const source = deltaVarint(delta, 0);
  return deltaVarint(delta, source.next).value;
}
