/**
 * Child process of lfs-download.bench.ts: fetch one object with modelsync's
 * LFS client (as reconcile would: verified into tmpDir, handed over, removed
 * here) and print one JSON line. Run alone so its peak RSS is its own.
 *
 *   MODELSYNC_TOKEN=… node --import tsx bench/lfs-download-child.ts <remote> <oid> <size> <tmpDir>
 */
import { rm } from 'node:fs/promises';
import { createFetcher } from '../src/lfs/index.ts';

const [remote, oid, sizeText, tmpDir] = process.argv.slice(2);
if (!remote || !oid || !sizeText || !tmpDir) {
  console.error('usage: lfs-download-child.ts <remote> <oid> <size> <tmpDir>');
  process.exit(2);
}
const size = Number(sizeText);
const fetcher = createFetcher({ remote, token: process.env.MODELSYNC_TOKEN || undefined });
const started = performance.now();
const result = await fetcher.fetch([{ oid, size }], {
  tmpDir,
  onVerified: async (_obj, path) => rm(path),
});
const seconds = (performance.now() - started) / 1000;
console.log(
  JSON.stringify({
    seconds,
    bytes: result.bytesTransferred,
    fetched: result.fetched.length,
    failed: result.failed.map((f) => f.error.message),
    maxRssKiB: process.resourceUsage().maxRSS,
  }),
);
process.exit(result.failed.length === 0 ? 0 : 1);
