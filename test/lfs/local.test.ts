/**
 * The local fetcher on a real repository whose git-lfs cache was filled by
 * the stock `git lfs` clean filter, falling back to an LFS server for what
 * the cache lacks or holds corrupt.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../src/errors.ts';
import { createFetcher } from '../../src/lfs/index.ts';
import { lfsObjectRelPath } from '../../src/registry/lfs-pointer.ts';
import { git, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { blob, FAST_RETRY, oidOf, runFetch } from './helpers.ts';
import { LfsTestServer } from './server.ts';

describe('local git-lfs cache fetcher', () => {
  let repo: string;
  const a = blob(200_000);
  const b = blob(50_000);
  let servers: LfsTestServer[] = [];
  afterEach(async () => void (await Promise.all(servers.splice(0).map((s) => s.close()))));

  beforeAll(() => {
    const env = isolatedGitEnv();
    repo = join(tempDir(), 'registry');
    git(['init', '-q', repo], { cwd: '/', env });
    git(['lfs', 'track', '*.bin'], { cwd: repo, env });
    writeTree(repo, { 'a.bin': a, 'b.bin': b });
    git(['add', '.'], { cwd: repo, env });
    git(['commit', '-qm', 'models'], { cwd: repo, env });
  });

  it('copies objects from the cache of a checkout, verifying them, without any server', async () => {
    const f = createFetcher({ remote: repo });
    const objs = [{ oid: oidOf(a), size: a.length }, { oid: oidOf(b), size: b.length }];
    const run = await runFetch(f, objs);
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(oidOf(a))).toBe(oidOf(a));
    expect(run.verified.get(oidOf(b))).toBe(oidOf(b));
    expect(run.result.bytesTransferred).toBe(a.length + b.length);
    expect(f.description).toContain(join(repo, '.git', 'lfs', 'objects'));
  });

  it('reports objects the cache lacks as NotFoundError when there is no LFS server', async () => {
    const missing = { oid: 'ef'.repeat(32), size: 3 };
    const run = await runFetch(createFetcher({ remote: repo }), [missing, { oid: oidOf(b), size: b.length }]);
    expect(run.result.fetched).toHaveLength(1);
    expect(run.result.failed[0]!.error).toBeInstanceOf(NotFoundError);
  });

  it('fetches what the cache lacks or holds corrupt from the .lfsconfig server', async () => {
    const s = await LfsTestServer.start();
    servers.push(s);
    const c = blob(30_000);
    const cObj = s.add(c);
    s.add(b);
    // Corrupt b in the cache (same size, different bytes): it must come from the server instead.
    const corrupt = Buffer.from(b);
    corrupt[10]! ^= 1;
    const cachedB = join(repo, '.git', lfsObjectRelPath(oidOf(b)));
    writeFileSync(cachedB, corrupt);
    try {
      const f = createFetcher({ remote: repo, lfsconfig: `[lfs]\n\turl = ${s.lfsUrl}\n`, retry: FAST_RETRY });
      const run = await runFetch(f, [{ oid: oidOf(a), size: a.length }, { oid: oidOf(b), size: b.length }, cObj]);
      expect(run.result.failed).toEqual([]);
      expect(run.verified.get(oidOf(b))).toBe(oidOf(b));
      expect(run.verified.get(cObj.oid)).toBe(oidOf(c));
      expect(s.batches.flatMap((x) => x.oids).sort()).toEqual([oidOf(b), cObj.oid].sort());
    } finally {
      writeFileSync(cachedB, b);
    }
  });

  it('reads a bare repository too', async () => {
    const env = isolatedGitEnv();
    const bare = join(tempDir(), 'bare.git');
    git(['clone', '-q', '--bare', repo, bare], { cwd: '/', env });
    // git clone --bare does not copy LFS objects; put one where git-lfs would.
    const rel = lfsObjectRelPath(oidOf(b));
    writeTree(bare, { [rel]: b });
    const run = await runFetch(createFetcher({ remote: `file://${bare}` }), [{ oid: oidOf(b), size: b.length }]);
    expect(run.verified.get(oidOf(b))).toBe(oidOf(b));
  });
});
