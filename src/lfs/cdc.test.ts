import { createCipheriv, createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type Chunk, Chunker, DEFAULT_CHUNK_PARAMS, parseChunkIndex, serializeChunkIndex, type ChunkIndex } from './cdc.ts';
import { planDelta } from './delta.ts';

function chunks(data: Buffer, pieces: number[] = [data.length]): Chunk[] {
  const c = new Chunker();
  const out: Chunk[] = [];
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const n = pieces[i % pieces.length]!;
    c.push(data.subarray(at, at + n), out);
    at += n;
  }
  return c.end(out);
}

/**
 * Seeded incompressible bytes (AES-128-CTR keystream). Random data made the edit test below
 * fail about one run in seventy: how fast normalized chunking finds the old cuts again after an
 * edit has a long tail (150 random trials: 4-7 new chunks mostly, 11-12 in two), so the data is
 * fixed and the test checks the chunker, not the dice.
 */
function seeded(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32)).update(Buffer.alloc(n));
}

describe('content-defined chunking', () => {
  const data = seeded('cdc data', 6 << 20);

  it('cuts the same chunks however the bytes arrive, within the size bounds, covering the file', () => {
    const whole = chunks(data);
    expect(chunks(data, [1, 7, 4093, 65536, 333_333])).toEqual(whole);
    const { min, max } = DEFAULT_CHUNK_PARAMS;
    expect(whole.slice(0, -1).every((c) => c.size >= min && c.size <= max)).toBe(true);
    expect(whole.reduce((n, c) => n + c.size, 0)).toBe(data.length);
    const avg = data.length / whole.length;
    expect(avg).toBeGreaterThan(40_000);
    expect(avg).toBeLessThan(110_000);
  });

  it('finds most chunks again after an insertion and an edit', () => {
    const before = chunks(data);
    const edited = Buffer.concat([data.subarray(0, 1_000_000), seeded('inserted', 5000), data.subarray(1_000_000, 4_000_000), seeded('edit', 100), data.subarray(4_000_100)]);
    const after = chunks(edited);
    const known = new Set(before.map((c) => c.sha256));
    const fresh = after.filter((c) => !known.has(c.sha256));
    expect(fresh.length).toBeLessThanOrEqual(6);
    expect(fresh.reduce((n, c) => n + c.size, 0)).toBeLessThan(1_000_000);
  });
});

describe('chunk index format', () => {
  const index: ChunkIndex = {
    params: DEFAULT_CHUNK_PARAMS,
    oid: 'ab'.repeat(32),
    size: 50_000,
    chunks: [
      { offset: 0, size: 20_000, sha256: '01'.repeat(32) },
      { offset: 20_000, size: 30_000, sha256: '02'.repeat(32) },
    ],
  };

  it('round-trips', () => {
    expect(parseChunkIndex(serializeChunkIndex(index), { oid: index.oid, size: index.size })).toEqual(index);
  });

  it('refuses an index that is not for this object, does not add up, or breaks its own bounds', () => {
    const bytes = serializeChunkIndex(index);
    expect(() => parseChunkIndex(bytes, { oid: 'cd'.repeat(32), size: 50_000 })).toThrow(/index is for/);
    expect(() => parseChunkIndex(serializeChunkIndex({ ...index, size: 50_001 }), { oid: index.oid, size: 50_001 })).toThrow(/covers 50000 bytes/);
    const big = { ...index, size: 300_000, chunks: [{ offset: 0, size: 300_000, sha256: '03'.repeat(32) }] };
    expect(() => parseChunkIndex(serializeChunkIndex(big), { oid: index.oid, size: 300_000 })).toThrow(/larger than/);
    expect(() => parseChunkIndex(Buffer.from('{"format":"other"}'), index)).toThrow(/not a chunk index/);
  });

  it('names the first malformed chunk entry', () => {
    const good = JSON.parse(serializeChunkIndex(index).toString()) as { chunks: unknown[] };
    const bad = (entry: unknown) => Buffer.from(JSON.stringify({ ...good, chunks: [good.chunks[0], entry, ...good.chunks.slice(2)] }));
    for (const entry of [[0, 'ab'.repeat(32)], [1.5, 'ab'.repeat(32)], ['10', 'ab'.repeat(32)], [10, 'AB'.repeat(32)], [10, 'ab'.repeat(31)], [10], {}, null]) {
      expect(() => parseChunkIndex(bad(entry), index)).toThrow(/not a chunk index \(chunks\.1: expected \[size, sha256\]/);
    }
    expect(() => parseChunkIndex(Buffer.from(JSON.stringify({ ...good, chunks: 'many' })), index)).toThrow(/not a chunk index \(chunks:/);
  });
});

describe('delta planning', () => {
  const c = (i: number, size: number): Chunk => ({ offset: 0, size, sha256: String(i).padStart(64, '0') });
  const sizes = [100, 200, 300, 400, 500];
  let off = 0;
  const index: ChunkIndex = { params: DEFAULT_CHUNK_PARAMS, oid: 'ff'.repeat(32), size: 1500, chunks: sizes.map((s, i) => ({ ...c(i, s), offset: (off += s) - s })) };

  it('copies what is local and merges adjacent missing chunks into one range', () => {
    const local = new Map([[index.chunks[2]!.sha256, { path: '/old', offset: 7 }]]);
    expect(planDelta(index, local)).toEqual([
      { kind: 'remote', offset: 0, size: 300 },
      { kind: 'local', offset: 300, size: 300, sha256: index.chunks[2]!.sha256, path: '/old', from: 7 },
      { kind: 'remote', offset: 600, size: 900 },
    ]);
  });

  it('continues after a partial file, fetching the rest of a chunk it stopped inside', () => {
    const local = new Map(index.chunks.map((ch) => [ch.sha256, { path: '/old', offset: ch.offset }]));
    expect(planDelta(index, local, 350)).toEqual([
      { kind: 'remote', offset: 350, size: 250 },
      { kind: 'local', offset: 600, size: 400, sha256: index.chunks[3]!.sha256, path: '/old', from: 600 },
      { kind: 'local', offset: 1000, size: 500, sha256: index.chunks[4]!.sha256, path: '/old', from: 1000 },
    ]);
  });
});
