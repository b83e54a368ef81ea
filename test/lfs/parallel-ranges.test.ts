/**
 * Parallel range requests for one object (src/lfs/ranges.ts), against a
 * real LFS server on 127.0.0.1 of its own that delays every answer (so
 * ranges overlap in time, as on a far link), counts Range requests and how
 * many run at once, and can corrupt or trickle ranges. No timings asserted.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointFromUrl, HttpFetcher } from '../../src/lfs/index.ts';
import { readTrailer, TRAILER_BYTES } from '../../src/lfs/ranges.ts';
import { ROOT, tempDir } from '../helpers/env.ts';
import { FAST_RETRY, runFetch } from './helpers.ts';

const MiB = 1 << 20;

interface RangeServer {
  url: string;
  ranges: string[];
  maxInFlight: number;
  bytesSent: number;
  close(): Promise<void>;
}

/** Serves one object; `opts.corrupt` flips a byte in answers to ranges not starting at 0; `opts.trickle` sends slowly. */
async function rangeServer(data: Buffer, opts: { delayMs?: number; corrupt?: boolean; trickle?: boolean; refuseRanges?: boolean } = {}): Promise<RangeServer> {
  const oid = createHash('sha256').update(data).digest('hex');
  const state = { ranges: [] as string[], maxInFlight: 0, bytesSent: 0 };
  let inFlight = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const { objects } = JSON.parse(body) as { objects: Array<{ oid: string; size: number }> };
        const href = `http://127.0.0.1:${(server.address() as AddressInfo).port}/objects/${oid}`;
        res.writeHead(200, { 'content-type': 'application/vnd.git-lfs+json' });
        res.end(JSON.stringify({ transfer: 'basic', objects: objects.map((o) => ({ ...o, actions: { download: { href } } })) }));
      });
      return;
    }
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    res.on('close', () => inFlight--);
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (req.headers.range) state.ranges.push(req.headers.range);
    setTimeout(() => {
      let start = 0;
      let end = data.length - 1;
      if (m && !(opts.refuseRanges && Number(m[1]) > 0 && m[2])) {
        start = Number(m[1]);
        if (m[2]) end = Math.min(end, Number(m[2]));
        res.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${data.length}` });
      } else res.writeHead(200, { 'content-length': data.length });
      let body = data.subarray(start, end + 1);
      if (opts.corrupt && start > 0) {
        body = Buffer.from(body);
        body[body.length >> 1]! ^= 0xff;
      }
      if (!opts.trickle) {
        state.bytesSent += body.length;
        res.end(body);
        return;
      }
      // 64 KiB every 20 ms: slow enough for a kill to land mid-transfer.
      let off = 0;
      const tick = setInterval(() => {
        if (res.destroyed) return clearInterval(tick);
        const n = Math.min(64 * 1024, body.length - off);
        state.bytesSent += n;
        res.write(body.subarray(off, off + n));
        off += n;
        if (off >= body.length) {
          clearInterval(tick);
          res.end();
        }
      }, 20);
      res.on('close', () => clearInterval(tick));
    }, opts.delayMs ?? 50);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/repo.git/info/lfs`;
  return {
    url,
    get ranges() {
      return state.ranges;
    },
    get maxInFlight() {
      return state.maxInFlight;
    },
    get bytesSent() {
      return state.bytesSent;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const servers: RangeServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function objectOf(data: Buffer): { oid: string; size: number } {
  return { oid: createHash('sha256').update(data).digest('hex'), size: data.length };
}

describe('parallel range requests', () => {
  it('fetches one object in several concurrent ranges and hands over exactly its bytes', async () => {
    const data = randomBytes(8 * MiB + 12345);
    const s = await rangeServer(data);
    servers.push(s);
    const fetcher = new HttpFetcher({ endpoint: endpointFromUrl(s.url), rangeStreams: 4, retry: FAST_RETRY });
    const run = await runFetch(fetcher, [objectOf(data)]);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(objectOf(data).oid)).toBe(objectOf(data).oid);
    // The first stream plus three helpers with closed ranges, all in flight together.
    const closed = s.ranges.filter((r) => /^bytes=\d+-\d+$/.test(r));
    expect(closed.length).toBe(3);
    expect(s.maxInFlight).toBeGreaterThanOrEqual(3);
    expect(run.result.bytesTransferred).toBeGreaterThanOrEqual(data.length);
    // Progress counts every segment and ends at the size.
    expect(run.progress.at(-1)?.bytes).toBe(data.length);
    expect(existsSync(join(run.tmpDir, `${objectOf(data).oid}.part`))).toBe(false);
    fetcher.close();
  });

  it('a corrupted range fails verification: ChecksumError, nothing handed over, no .part left', async () => {
    const data = randomBytes(6 * MiB);
    const s = await rangeServer(data, { corrupt: true });
    servers.push(s);
    const fetcher = new HttpFetcher({ endpoint: endpointFromUrl(s.url), rangeStreams: 3, retry: FAST_RETRY });
    const run = await runFetch(fetcher, [objectOf(data)]);
    expect(run.result.fetched).toEqual([]);
    expect(run.result.failed.map((f) => f.error.code)).toEqual(['ChecksumError']);
    expect(run.verified.size).toBe(0);
    expect(existsSync(join(run.tmpDir, `${objectOf(data).oid}.part`))).toBe(false);
    fetcher.close();
  });

  it('falls back to one stream when the server answers a range with 200', async () => {
    const data = randomBytes(5 * MiB);
    const s = await rangeServer(data, { refuseRanges: true });
    servers.push(s);
    const fetcher = new HttpFetcher({ endpoint: endpointFromUrl(s.url), rangeStreams: 4, retry: FAST_RETRY });
    const run = await runFetch(fetcher, [objectOf(data)]);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(objectOf(data).oid)).toBe(objectOf(data).oid);
    fetcher.close();
  });

  it('resumes after the process is killed mid-download: only the holes are fetched again', async () => {
    const data = randomBytes(8 * MiB);
    const obj = objectOf(data);
    const s = await rangeServer(data, { trickle: true, delayMs: 10 });
    servers.push(s);
    const dir = tempDir('ranges-kill-');
    const tmpDir = join(dir, 'tmp');
    const part = join(tmpDir, `${obj.oid}.part`);
    const script = join(dir, 'child.mts');
    writeFileSync(
      script,
      `import { endpointFromUrl, HttpFetcher } from ${JSON.stringify(join(ROOT, 'src/lfs/index.ts'))};\n` +
        `const f = new HttpFetcher({ endpoint: endpointFromUrl(${JSON.stringify(s.url)}), rangeStreams: 4, retry: { retries: 0 } });\n` +
        `await f.fetch([${JSON.stringify(obj)}], { tmpDir: ${JSON.stringify(tmpDir)}, onVerified: async () => {}, onProgress: (p) => { if (p.bytes > ${3 * MiB}) console.log('half'); } });\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('half')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`child exited (${code}) before being killed`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    // What the kill left: the object's bytes so far and the trailer that says which are real.
    expect(statSync(part).size).toBe(obj.size + TRAILER_BYTES);
    const segments = readTrailer(part, obj.size)!;
    expect(segments.length).toBe(4);
    const had = segments.reduce((n, g) => n + (g.pos - g.start), 0);
    expect(had).toBeGreaterThan(0);

    const sentBefore = s.bytesSent;
    const rangesBefore = s.ranges.length;
    const fetcher = new HttpFetcher({ endpoint: endpointFromUrl(s.url), rangeStreams: 4, retry: FAST_RETRY });
    const run = await runFetch(fetcher, [obj], { tmpDir });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(obj.oid);
    // Only what was missing crossed the wire again (the trailer may lag the disk by a few MiB).
    expect(s.bytesSent - sentBefore).toBeLessThan(obj.size);
    expect(run.result.bytesTransferred).toBeLessThan(obj.size);
    // Exactly one request per hole, each starting where the trailer said its segment stopped.
    const holes = segments.filter((g) => g.pos < g.end).map((g) => `bytes=${g.pos}-${g.end - 1}`);
    expect(s.ranges.slice(rangesBefore).sort()).toEqual(holes.sort());
    expect(existsSync(part)).toBe(false);
    fetcher.close();
  }, 60_000);

  it('a sequential fetch of a .part left by parallel ranges resumes from its contiguous prefix', async () => {
    const data = randomBytes(4 * MiB);
    const obj = objectOf(data);
    const s = await rangeServer(data);
    servers.push(s);
    const tmpDir = join(tempDir('ranges-seq-'), 'tmp');
    await fsp.mkdir(tmpDir, { recursive: true });
    const part = join(tmpDir, `${obj.oid}.part`);
    // A part with the first MiB real, then garbage where no segment had got to, plus its trailer.
    const { writeTrailer } = await import('../../src/lfs/ranges.ts');
    const bytes = Buffer.concat([data.subarray(0, MiB), randomBytes(3 * MiB)]);
    await fsp.writeFile(part, bytes);
    const fh = await fsp.open(part, 'r+');
    writeTrailer(fh.fd, obj.size, [
      { start: 0, end: 2 * MiB, pos: MiB },
      { start: 2 * MiB, end: 4 * MiB, pos: 2 * MiB },
    ]);
    await fh.close();
    const fetcher = new HttpFetcher({ endpoint: endpointFromUrl(s.url), rangeStreams: 'off', retry: FAST_RETRY });
    const run = await runFetch(fetcher, [obj], { tmpDir });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(obj.oid);
    expect(s.ranges).toEqual([`bytes=${MiB}-`]);
    fetcher.close();
  });
});

describe('a .part whose trailer lies', () => {
  it('a valid trailer claiming garbage bytes are real (no holes, gaps between segments) hands over nothing but the object', async () => {
    const data = randomBytes(4 * MiB);
    const obj = objectOf(data);
    const s = await rangeServer(data);
    servers.push(s);
    const { writeTrailer } = await import('../../src/lfs/ranges.ts');
    const lies = [
      // Every segment "complete", over bytes none of which are the object's.
      [
        { start: 0, end: 2 * MiB, pos: 2 * MiB },
        { start: 2 * MiB, end: 4 * MiB, pos: 4 * MiB },
      ],
      // A gap no segment covers, so no request would ever fetch it.
      [
        { start: 0, end: MiB, pos: MiB },
        { start: 3 * MiB, end: 4 * MiB, pos: 3 * MiB },
      ],
    ];
    for (const segments of lies) {
      const tmpDir = join(tempDir('ranges-lie-'), 'tmp');
      await fsp.mkdir(tmpDir, { recursive: true });
      const part = join(tmpDir, `${obj.oid}.part`);
      await fsp.writeFile(part, randomBytes(4 * MiB));
      const fh = await fsp.open(part, 'r+');
      writeTrailer(fh.fd, obj.size, segments);
      await fh.close();
      expect(readTrailer(part, obj.size)).not.toBeNull();
      const fetcher = new HttpFetcher({ endpoint: endpointFromUrl(s.url), rangeStreams: 4, retry: FAST_RETRY });
      const run = await runFetch(fetcher, [obj], { tmpDir });
      // Either recovered from scratch or failed: what was handed over is exactly the object.
      for (const got of run.verified.values()) expect(got).toBe(obj.oid);
      expect(run.result.failed.length + run.verified.size).toBe(1);
      expect(existsSync(part)).toBe(false);
      fetcher.close();
    }
  }, 60_000);
});
