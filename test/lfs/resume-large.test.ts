/**
 * Resuming past 2 GiB: offsets beyond 32-bit integers in Range and
 * Content-Range, in the .part file and in the hash of its prefix. The object
 * is 2 GiB of zeros (a sparse file, so no disk is used) and a random tail.
 * Slow by nature (the client hashes the 2 GiB prefix it resumes from).
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, closeSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetcher, type HttpFetcher } from '../../src/lfs/index.ts';
import { tempDir } from '../helpers/env.ts';
import { FAST_RETRY } from './helpers.ts';
import { LfsTestServer } from './server.ts';

const PREFIX = 2 ** 31 + 4096; // past 2 GiB
const TAIL = randomBytes(256 * 1024);
const SIZE = PREFIX + TAIL.length;

/** A sparse file: `zeros` bytes of nothing, then `tail` bytes of data (optional). */
function sparse(path: string, zeros: number, tail?: Buffer): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, zeros);
  if (tail) writeSync(fd, tail, 0, tail.length, zeros);
  closeSync(fd);
}

/** The oid of `zeros` zero bytes then `tail`, without reading the sparse file back. */
function sha256Of(zeros: number, tail: Buffer): string {
  const h = createHash('sha256');
  const block = Buffer.alloc(4 << 20);
  for (let left = zeros; left > 0; left -= block.length) h.update(left >= block.length ? block : block.subarray(0, left));
  return h.update(tail).digest('hex');
}

let server: LfsTestServer;
let obj: { oid: string; size: number };
let dir: string;
beforeAll(async () => {
  dir = tempDir('resume-large-');
  const file = join(dir, 'object');
  sparse(file, PREFIX, TAIL);
  obj = { oid: sha256Of(PREFIX, TAIL), size: SIZE };
  server = await LfsTestServer.start();
  server.addFile(obj.oid, file);
}, 120_000);
afterAll(async () => server?.close());

function partWith(bytes: number): string {
  const tmpDir = join(tempDir('resume-large-tmp-'), 'tmp');
  mkdirSync(tmpDir, { recursive: true });
  // The .part holds the zeros and the first (bytes - PREFIX) bytes of the tail.
  sparse(join(tmpDir, `${obj.oid}.part`), PREFIX, TAIL.subarray(0, bytes - PREFIX));
  return tmpDir;
}

describe('resume beyond 2 GiB', () => {
  it('asks for bytes=N- with N above 2^31, and accepts a 206 that starts before it, reading past what it has', async () => {
    const have = PREFIX + 10_000;
    server.fault(obj.oid, { startAt: PREFIX });
    const f = createFetcher({ remote: server.remoteUrl, retry: FAST_RETRY }) as HttpFetcher;
    const tmpDir = partWith(have);
    const verified: string[] = [];
    // Hashing 2 GiB twice more would only slow the test: the fetcher verified it; we check size and tail.
    const result = await f.fetch([obj], {
      tmpDir,
      async onVerified(o, path) {
        const st = await fsp.stat(path);
        const fh = await fsp.open(path, 'r');
        const tail = Buffer.alloc(TAIL.length);
        await fh.read(tail, 0, TAIL.length, PREFIX);
        await fh.close();
        if (st.size === SIZE && tail.equals(TAIL)) verified.push(o.oid);
        await fsp.rm(path);
      },
    });
    f.close();
    expect(result.failed).toEqual([]);
    expect(verified).toEqual([obj.oid]);
    const last = server.downloadsOf(obj.oid).at(-1)!;
    expect(last.headers.range).toBe(`bytes=${have}-`);
    expect(last.status).toBe(206);
    // One request, and what crossed the wire is the rest from where the server started.
    expect(result.bytesTransferred).toBe(SIZE - PREFIX);
  }, 120_000);
});
