/**
 * Chunk-delta downloads against the test LFS server and the hub: a new
 * version that shares most chunks with a file the site already has costs
 * only the missing ranges; any doubt falls back to the whole object.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { buildChunkIndex, createFetcher, discoverEndpoint, serializeChunkIndex, uploadObjects, type DeltaHints, type HttpFetcher, type LfsObject } from '../../src/lfs/index.ts';
import { tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { gitAsync, isolatedGitEnv } from '../helpers/env.ts';
import { FAST_RETRY, oidOf, runFetch } from './helpers.ts';
import { LfsTestServer } from './server.ts';

let servers: LfsTestServer[] = [];
let fetchers: HttpFetcher[] = [];
afterEach(async () => {
  for (const f of fetchers.splice(0)) f.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/**
 * Seeded incompressible bytes: with random data, which chunks an edit touches (and so the bytes
 * a delta fetches) varied from run to run, and the hub case crossed its 1 MB bound now and then.
 */
function seeded(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32)).update(Buffer.alloc(n));
}

/** An old version on the site, and a new one with an insertion and an edit. */
async function versions(): Promise<{ dir: string; oldPath: string; newPath: string; newData: Buffer; index: { oid: string; size: number; bytes: Buffer } }> {
  const dir = tempDir('lfs-delta-');
  const old = seeded('old version', 8 << 20);
  const newData = Buffer.concat([old.subarray(0, 2_000_000), seeded('inserted', 30_000), old.subarray(2_000_000, 6_000_000), seeded('edited', 10_000), old.subarray(6_010_000)]);
  const oldPath = join(dir, 'old.bin');
  const newPath = join(dir, 'new.bin');
  writeFileSync(oldPath, old);
  writeFileSync(newPath, newData);
  const built = await buildChunkIndex(newPath);
  return { dir, oldPath, newPath, newData, index: built };
}

function hints(indexOf: Map<string, LfsObject>, candidates: string[]): DeltaHints {
  return { chunkIndex: (o) => indexOf.get(o.oid), localCandidates: () => candidates };
}

async function server(): Promise<LfsTestServer> {
  const s = await LfsTestServer.start();
  servers.push(s);
  return s;
}

function fetcher(remote: string, token?: string): HttpFetcher {
  const f = createFetcher({ remote, token, retry: FAST_RETRY, ...(process.env.DELTA_DEBUG ? { logger: pino({ level: 'debug' }) } : {}) }) as HttpFetcher;
  fetchers.push(f);
  return f;
}

describe('chunk-delta downloads', () => {
  it('fetches only the missing ranges of a new version and verifies the whole file', async () => {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    const gets = s.downloadsOf(obj.oid);
    // Two changed regions: a handful of merged ranges, every one a bounded a-b range.
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.length).toBeLessThanOrEqual(4);
    for (const g of gets) expect(g.headers.range).toMatch(/^bytes=\d+-\d+$/);
    // Far less than the 8 MiB object crossed the network (index included).
    expect(run.result.bytesTransferred).toBeLessThan(1_000_000);
    expect(run.result.bytesTransferred).toBeGreaterThan(40_000);
    expect(run.progress.at(-1)!.bytes).toBe(obj.size);
  });

  it('a range whose connection is cut mid-body is asked for again; the delta still reuses the local chunks', async () => {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    s.fault(obj.oid, { dropAfter: 10_000 });
    const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    const gets = s.downloadsOf(obj.oid);
    for (const g of gets) expect(g.headers.range).toMatch(/^bytes=\d+-\d+$/);
    // The cut range again (same end), not the rest of the object in one whole download.
    const end = (r: string | string[] | undefined) => String(r).split('-')[1];
    expect(gets.filter((g) => end(g.headers.range) === end(gets[0]!.headers.range)).length).toBe(2);
    expect(run.result.bytesTransferred).toBeLessThan(1_000_000);
  });

  it('downloads the whole object when the server ignores ranges', async () => {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    s.fault(obj.oid, { ignoreRange: true });
    const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    // The first range got the whole object (200): the delta stops, and the normal download resumes after the prefix it wrote.
    const gets = s.downloadsOf(obj.oid);
    expect(gets[0]!.status).toBe(200);
    expect(gets.at(-1)!.headers.range).toMatch(/^bytes=\d+-$/);
  });

  it('downloads the whole object when the index is not for it, or is missing on the server', async () => {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const wrong = s.add(serializeChunkIndex({ params: { min: 16384, avg: 65536, max: 262144 }, oid: 'ab'.repeat(32), size: 10, chunks: [] }));
    const absent = { oid: 'cd'.repeat(32), size: 100 };
    for (const idx of [wrong, absent]) {
      const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
      expect(run.result.failed).toEqual([]);
      expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    }
    expect(s.downloadsOf(obj.oid).map((g) => g.headers.range)).toEqual([undefined, undefined]);
  });

  it('never hands over a wrong file when the fetched ranges are corrupt', async () => {
    // A byte flipped by the server inside a range the delta fetches: the final checksum fails, the
    // assembled file is discarded, and the full download that follows fails its own checksum too.
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    s.corruptAt.set(obj.oid, 2_010_000); // inside the inserted bytes, which no old chunk has
    const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
    expect(run.result.fetched).toEqual([]);
    expect(run.result.failed[0]!.error.code).toBe('ChecksumError');
    expect(run.verified.size).toBe(0);
    expect(s.downloadsOf(obj.oid).at(-1)!.headers.range).toBeUndefined(); // the fallback was a whole download
  });

  it('reuses local chunks even when the corruption on the server is in a part it does not need', async () => {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    s.corruptAt.set(obj.oid, 4_000_000); // old bytes the site already has
    const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
  });

  it('a local file that changes after it was indexed costs a few ranges, never a bad file', async () => {
    // The local chunks are matched by sha256 when the old file is indexed, and the assembled file is
    // checked whole: when the old file changes in between, the whole-file check fails, the chunks that
    // no longer match are found and fetched, and the object still arrives by ranges.
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    let tampered = false;
    const run = await runFetch(fetcher(s.remoteUrl), [obj], {
      delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]),
      onProgress: (p) => {
        if (p.oid !== obj.oid || tampered) return;
        tampered = true;
        const fd = openSync(v.oldPath, 'r+');
        writeSync(fd, Buffer.from('changed under the delta'), 0, 23, 7_000_000);
        closeSync(fd);
      },
    });
    expect(tampered).toBe(true);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    const asked = s.downloadsOf(obj.oid).map((g) => String(g.headers.range));
    expect(asked.filter((r) => !/^bytes=\d+-\d+$/.test(r))).toEqual([]); // no whole download
    const ranges = asked.map((r) => /^bytes=(\d+)-(\d+)$/.exec(r));
    // Old byte 7,000,000 is new byte 7,030,000 (30,000 inserted before it, 10,000 swapped for 10,000 after).
    expect(ranges.some((r) => Number(r![1]) <= 7_030_000 && Number(r![2]) >= 7_030_022)).toBe(true);
    expect(run.result.bytesTransferred).toBeLessThan(1_500_000);
  });

  /** Both versions, the new one and its index on a server, and the index of the old file as a site would have kept it. */
  async function keptIndexSetup() {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    const oldIndex = await buildChunkIndex(v.oldPath);
    const oldObj = { oid: oidOf(readFileSync(v.oldPath)), size: 8 << 20 };
    return { v, s, obj, idx, oldIndex, oldObj };
  }

  it('a kept index of the old file stands in for reading it, and the new index is kept in turn', async () => {
    const { v, s, obj, idx, oldIndex, oldObj } = await keptIndexSetup();
    const kept = new Map<string, Buffer>();
    const lines: string[] = [];
    const f = createFetcher({ remote: s.remoteUrl, retry: FAST_RETRY, logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) }) as HttpFetcher;
    fetchers.push(f);
    const run = await runFetch(f, [obj], {
      delta: {
        ...hints(new Map([[obj.oid, idx]]), [v.oldPath]),
        keptIndex: async (p) => (p === v.oldPath ? { bytes: oldIndex.bytes, file: oldObj } : undefined),
        keepIndex: async (o, bytes) => void kept.set(o.oid, bytes),
      },
    });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    expect(s.downloadsOf(obj.oid).every((g) => /^bytes=\d+-\d+$/.test(String(g.headers.range)))).toBe(true);
    expect(run.result.bytesTransferred).toBeLessThan(1_000_000);
    expect(lines.join('')).toMatch(/"keptIndexes":1/);
    expect(kept.get(obj.oid)?.equals(v.index.bytes)).toBe(true);
  });

  it('a kept index that no longer describes the file on disk costs a few ranges, never a bad file', async () => {
    const { v, s, obj, idx, oldIndex, oldObj } = await keptIndexSetup();
    // The old file changed after its index was kept (nothing in the store should let that happen; a kept index is only a hint).
    const fd = openSync(v.oldPath, 'r+');
    writeSync(fd, Buffer.from('changed after the index was kept'), 0, 32, 1_000_000);
    closeSync(fd);
    const run = await runFetch(fetcher(s.remoteUrl), [obj], {
      delta: { ...hints(new Map([[obj.oid, idx]]), [v.oldPath]), keptIndex: async () => ({ bytes: oldIndex.bytes, file: oldObj }) },
    });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    const asked = s.downloadsOf(obj.oid).map((g) => String(g.headers.range));
    expect(asked.filter((r) => !/^bytes=\d+-\d+$/.test(r))).toEqual([]); // no whole download
    expect(asked.map((r) => /^bytes=(\d+)-(\d+)$/.exec(r)!).some((r) => Number(r[1]) <= 1_000_000 && Number(r[2]) >= 1_000_031)).toBe(true);
  });

  it('a whole download brings the object\'s index along and keeps it; without one on the server it still downloads', async () => {
    const v = await versions();
    const s = await server();
    const obj = s.add(v.newData);
    const idx = s.add(v.index.bytes);
    const kept = new Map<string, Buffer>();
    const keepIndex = async (o: LfsObject, bytes: Buffer) => void kept.set(o.oid, bytes);
    // Nothing on the site to reuse (a first install).
    const run = await runFetch(fetcher(s.remoteUrl), [obj], { delta: { ...hints(new Map([[obj.oid, idx]]), []), keepIndex } });
    expect(run.verified.get(obj.oid)).toBe(oidOf(v.newData));
    expect(run.result.bytesTransferred).toBe(obj.size + idx.size);
    expect(kept.get(obj.oid)?.equals(v.index.bytes)).toBe(true);

    kept.clear();
    const again = await runFetch(fetcher(s.remoteUrl), [obj], { delta: { ...hints(new Map([[obj.oid, { oid: 'cd'.repeat(32), size: 100 }]]), []), keepIndex } });
    expect(again.result.failed).toEqual([]);
    expect(again.verified.get(obj.oid)).toBe(oidOf(v.newData));
    expect(kept.size).toBe(0);
  });

  it('works against the hub (any LFS server whose downloads honour Range)', async () => {
    const v = await versions();
    const th = await startTestHub({ tokens: true });
    const env = isolatedGitEnv();
    const work = join(tempDir(), 'repo');
    mkdirSync(work);
    await gitAsync(['init', '-q', work], { cwd: '/', env });
    writeFileSync(join(work, 'README'), 'x\n');
    await gitAsync(['add', '.'], { cwd: work, env });
    await gitAsync(['commit', '-qm', 'init'], { cwd: work, env });
    await gitAsync(['push', '-q', th.repoUrl('delta', th.secrets.publisher), 'main'], { cwd: work, env });
    const indexPath = join(v.dir, 'index.json');
    writeFileSync(indexPath, v.index.bytes);
    const obj = { oid: oidOf(v.newData), size: v.newData.length };
    const idx = { oid: v.index.oid, size: v.index.size };
    await uploadObjects({ endpoint: discoverEndpoint({ remote: th.repoUrl('delta'), token: th.secrets.publisher, operation: 'upload' }), objects: [{ ...obj, path: v.newPath }, { ...idx, path: indexPath }] });

    const run = await runFetch(fetcher(th.repoUrl('delta'), th.secrets.site), [obj], { delta: hints(new Map([[obj.oid, idx]]), [v.oldPath]) });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(obj.oid);
    expect(run.result.bytesTransferred).toBeLessThan(1_000_000);
  });
});
