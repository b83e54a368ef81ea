import { describe, expect, it } from 'vitest';
import type { ChunkIndex } from '../lfs/cdc.ts';
import { oidOf } from '../../test/helpers/memory-source.ts';
import { estimateFetch } from './estimate.ts';

const MiB = 1024 * 1024;
const params = { min: 16384, avg: 65536, max: 262144 };
const index = (file: string, tags: string[], p = params): ChunkIndex => ({ params: p, oid: oidOf(file), size: tags.length * 65536, chunks: tags.map((t, i) => ({ offset: i * 65536, size: 65536, sha256: oidOf(t) })) });
const file = (name: string, seed: string, size: number, idx?: string) => ({ name, oid: oidOf(seed), size, ...(idx ? { chunks: { oid: oidOf(idx), size: 1000 } } : {}) });
const tags = (prefix: string, n: number, from = 0) => Array.from({ length: n }, (_, i) => `${prefix}${i + from}`);

describe('estimateFetch', () => {
  it('content the site holds under any name is not fetched; a small file is fetched whole', () => {
    const held = new Set([oidOf('shared')]);
    const e = estimateFetch(held, [file('a.bin', 'old', 100)], [file('a.bin', 'shared', 100), file('b.txt', 'new', 200)], () => undefined);
    expect(e.files.map((f) => [f.name, f.change, f.fetch, f.basis])).toEqual([['a.bin', 'changed', 0, 'held'], ['b.txt', 'added', 200, 'full']]);
    expect(e).toMatchObject({ full: 200, estimate: 200, unknown: false });
  });

  it('counts the missing chunks plus the index, like the fetcher', () => {
    const old = index('v1', tags('c', 128));
    const next = index('v2', [...tags('c', 100), ...tags('x', 28)]);
    const lookup = new Map([[oidOf('i1'), old], [oidOf('i2'), next]]);
    const e = estimateFetch(new Set([oidOf('v1')]), [file('w', 'v1', 8 * MiB, 'i1')], [file('w', 'v2', 8 * MiB, 'i2')], (o) => lookup.get(o));
    expect(e).toMatchObject({ full: 8 * MiB, estimate: 28 * 65536 + 1000, unknown: false });
    // Cut with other parameters, the old index says nothing about the site's copy: an upper bound.
    const other = new Map([[oidOf('i1'), { ...old, params: { ...params, avg: 32768 } }], [oidOf('i2'), next]]);
    expect(estimateFetch(new Set(), [file('w', 'v1', 8 * MiB, 'i1')], [file('w', 'v2', 8 * MiB, 'i2')], (o) => other.get(o))).toMatchObject({ estimate: 8 * MiB, unknown: true });
    // A file under 4 MiB is never delta-fetched, whatever its index says.
    const small = estimateFetch(new Set(), [file('w', 'v1', 3 * MiB, 'i1')], [file('w', 'v2', 3 * MiB, 'i2')], (o) => lookup.get(o));
    expect(small).toMatchObject({ estimate: 3 * MiB, unknown: false });
    // A renamed file has no local source of its name: full.
    expect(estimateFetch(new Set(), [file('w', 'v1', 8 * MiB, 'i1')], [file('w2', 'v2', 8 * MiB, 'i2')], (o) => lookup.get(o))).toMatchObject({ estimate: 8 * MiB });
  });
});
