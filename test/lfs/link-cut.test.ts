/**
 * A site's link dies in the middle of a download: every connection is reset
 * at once, on both sides (bench/wan/delay-proxy.ts between the client and a
 * real hub on 127.0.0.1, no namespace needed). The object still arrives
 * whole and verified, and only what was in flight is fetched twice: the
 * retry resumes from the `.part` with a Range request instead of starting
 * over. The WAN benchmark measures the same on a shaped link; this is the
 * behaviour, without timings.
 */
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DelayProxy } from '../../bench/wan/delay-proxy.ts';
import { createFetcher, uploadObjects, type HttpFetcher } from '../../src/lfs/index.ts';
import { tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { blob, FAST_RETRY, oidOf, runFetch } from './helpers.ts';

const MiB = 1 << 20;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function partBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).filter((f) => f.endsWith('.part')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

describe('a link cut mid-download', () => {
  it('resumes where the .part ends: the object arrives verified and less than 1 MiB is fetched twice', async () => {
    const th = await startTestHub();
    const data = blob(8 * MiB);
    const oid = oidOf(data);
    const file = join(tempDir('link-cut-'), 'model.bin');
    writeFileSync(file, data);
    await uploadObjects({ endpoint: `${th.url}/cut.git/info/lfs`, objects: [{ oid, size: data.length, path: file }] });

    // A window of 64 KiB per 20 ms round trip holds the transfer at ~3 MiB/s, so there is a middle to cut in.
    const port = Number(new URL(th.url).port);
    const proxy = new DelayProxy({ listenHost: '127.0.0.1', listenPort: 0, upstreamHost: '127.0.0.1', upstreamPort: port, rttMs: 20, windowBytes: 64 << 10 });
    const proxyPort = await proxy.start();
    cleanups.push(() => proxy.close());
    const f = createFetcher({ remote: `http://127.0.0.1:${proxyPort}/cut.git`, retry: FAST_RETRY }) as HttpFetcher;
    cleanups.push(() => f.close());

    const tmpDir = join(tempDir('link-cut-store-'), 'tmp');
    const fetching = runFetch(f, [{ oid, size: data.length }], { tmpDir });
    let cutAt = 0;
    let resets = 0;
    for (let i = 0; i < 3000 && resets === 0; i++) {
      cutAt = partBytes(tmpDir);
      if (cutAt >= 2 * MiB) resets = proxy.cut();
      else await new Promise((r) => setTimeout(r, 5));
    }
    const run = await fetching;

    expect(resets).toBeGreaterThan(0); // the cut happened mid-transfer, with a download connection open
    expect(cutAt).toBeLessThan(data.length);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(oid)).toBe(oid);
    // Starting over would have fetched the 2+ MiB before the cut again.
    expect(run.result.bytesTransferred).toBeGreaterThanOrEqual(data.length);
    expect(run.result.bytesTransferred - data.length).toBeLessThan(MiB);
    expect(proxy.stats.connections).toBeGreaterThanOrEqual(2); // the retry came on a new connection
  });
});
