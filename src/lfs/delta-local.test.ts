import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { chunkFile } from './cdc.ts';
import { indexLocalFiles, planDelta, plannedBytes } from './delta.ts';

/**
 * The local index looks for each new chunk at its own offset first and cuts
 * the old file only from the first miss on: it must find every chunk that
 * cutting the whole old file would have found.
 */
describe('finding new chunks in a local file', () => {
  const old = randomBytes(12 << 20);
  const cases: Array<[string, Buffer]> = [
    ['data appended', Buffer.concat([old, randomBytes(1 << 20)])],
    ['the last tenth rewritten in place', Buffer.concat([old.subarray(0, 11 << 20), randomBytes(1 << 20)])],
    ['a block rewritten in the middle', Buffer.concat([old.subarray(0, 5 << 20), randomBytes(1 << 20), old.subarray(6 << 20)])],
    ['bytes inserted near the start (everything after moves)', Buffer.concat([old.subarray(0, 100_000), randomBytes(3000), old.subarray(100_000)])],
    ['bytes deleted in the middle', Buffer.concat([old.subarray(0, 6 << 20), old.subarray((6 << 20) + 5000)])],
  ];
  for (const [what, next] of cases) {
    it(`reuses as much as a full cut of the old file: ${what}`, async () => {
      const dir = tempDir('delta-local-');
      writeFileSync(join(dir, 'old'), old);
      writeFileSync(join(dir, 'new'), next);
      const index = await chunkFile(join(dir, 'new'));
      const found = await indexLocalFiles([join(dir, 'old')], index);
      const oldChunks = new Set((await chunkFile(join(dir, 'old'))).chunks.map((c) => c.sha256));
      const full = index.chunks.filter((c) => oldChunks.has(c.sha256)).reduce((n, c) => n + c.size, 0);
      const got = plannedBytes(planDelta(index, found));
      expect(got.local).toBeGreaterThanOrEqual(full);
      expect(got.local).toBeGreaterThan(next.length * 0.8);
      // Every reuse points at bytes that really are that chunk.
      for (const [sha, at] of found) {
        const c = index.chunks.find((x) => x.sha256 === sha)!;
        expect(old.subarray(at.offset, at.offset + c.size).equals(next.subarray(c.offset, c.offset + c.size))).toBe(true);
      }
    });
  }
});
