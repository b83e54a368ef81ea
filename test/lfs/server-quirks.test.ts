/**
 * The LFS client alone against server quirks of hosts we did not write
 * (test/lfs/foreign-host.test.ts runs whole passes against them).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildChunkIndex, createFetcher, type HttpFetcher } from '../../src/lfs/index.ts';
import { tempDir } from '../helpers/env.ts';
import { FAST_RETRY, oidOf, runFetch } from './helpers.ts';
import { LfsTestServer, type LfsTestServerOptions } from './server.ts';

const servers: LfsTestServer[] = [];
const fetchers: HttpFetcher[] = [];
afterEach(async () => {
  for (const f of fetchers.splice(0)) f.close();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function setup(options: LfsTestServerOptions): Promise<{ s: LfsTestServer; f: HttpFetcher }> {
  const s = await LfsTestServer.start(options);
  servers.push(s);
  const f = createFetcher({ remote: s.remoteUrl, retry: FAST_RETRY, token: options.token }) as HttpFetcher;
  fetchers.push(f);
  return { s, f };
}

describe('server quirks', () => {
  it('chunk delta against a server whose 206 runs to the end of the object: ranges are read as needed, not the whole object', async () => {
    const dir = tempDir('quirks-');
    const old = randomBytes(8 << 20);
    const next = Buffer.concat([old.subarray(0, 3_000_000), randomBytes(20_000), old.subarray(3_000_000, 6_000_000), randomBytes(5_000), old.subarray(6_000_000)]);
    writeFileSync(join(dir, 'old'), old);
    writeFileSync(join(dir, 'new'), next);
    const index = await buildChunkIndex(join(dir, 'new'));
    const { s, f } = await setup({ ranges: 'to-end' });
    const obj = s.add(next);
    const idx = s.add(index.bytes);
    const run = await runFetch(f, [obj], { delta: { chunkIndex: () => idx, localCandidates: () => [join(dir, 'old')] } });
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(obj.oid)).toBe(oidOf(next));
    const ranged = s.downloadsOf(obj.oid).filter((r) => /^bytes=\d+-\d+$/.test(String(r.headers.range)));
    expect(ranged.length).toBeGreaterThanOrEqual(2);
    // Before: the first 206 to the end was refused, and the object came whole (8 MiB).
    expect(run.result.bytesTransferred).toBeLessThan(1 << 20);
    expect(s.downloadsOf(obj.oid).every((r) => r.headers.range === undefined || /^bytes=\d+-\d+$/.test(String(r.headers.range)))).toBe(true);
  });

  it('a same-origin href with an expiry that the server refuses (403) before then is asked for again with a new batch', async () => {
    const { s, f } = await setup({ token: 'tok-123456', expiresIn: () => 3600, expiresAt: true });
    const obj = s.add(randomBytes(100_000));
    s.fault(obj.oid, { status: 403, body: 'link expired' });
    const run = await runFetch(f, [obj]);
    expect(run.result.failed).toEqual([]);
    expect(s.downloadsOf(obj.oid).map((r) => r.status)).toEqual([403, 200]);
    expect(s.batches).toHaveLength(2);
  });

  it('a Retry-After beyond the deadline is not waited for: the object fails at once, and says why', async () => {
    const { s, f } = await setup({});
    const obj = s.add(randomBytes(10_000));
    s.fault(obj.oid, { status: 503, retryAfter: '120' });
    const started = Date.now();
    const run = await runFetch(f, [obj], { deadline: Date.now() + 5_000 });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(run.result.failed[0]!.error.message).toMatch(/503/);
    expect(run.result.throttled).toBe(0);
  });
});
