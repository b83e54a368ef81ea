/**
 * Interoperability with the hub (`modelsync serve`) and the stock git-lfs
 * client: what `git push` (git-lfs pre-push) stores, we download; what we
 * upload, `git lfs fetch` downloads and `git lfs fsck` accepts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createFetcher, discoverEndpoint, uploadObjects, type HttpFetcher } from '../../src/lfs/index.ts';
import { lfsObjectRelPath } from '../../src/registry/lfs-pointer.ts';
import { gitAsync, isolatedGitEnv, tempDir, writeTree, type RunResult } from '../helpers/env.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';
import { blob, runFetch } from './helpers.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('LFS client against the hub and stock git-lfs', () => {
  let th: TestHub;
  let env: NodeJS.ProcessEnv;
  const g = (args: string[], cwd: string): Promise<RunResult> => gitAsync(args, { cwd, env });

  beforeAll(async () => {
    th = await startTestHub({ tokens: true });
    env = isolatedGitEnv();
  });

  it('downloads objects that stock git lfs pushed, with a site token', async () => {
    const work = join(tempDir(), 'publisher');
    const big = blob(3 << 20);
    const small = blob(10_000);
    await g(['init', '-q', work], '/');
    await g(['lfs', 'track', '*.bin'], work);
    writeTree(work, { 'big.bin': big, 'small.bin': small });
    await g(['add', '.'], work);
    await g(['commit', '-qm', 'models'], work);
    await g(['push', '-q', th.repoUrl('pushed', th.secrets.publisher), 'main'], work);

    const f = createFetcher({ remote: th.repoUrl('pushed'), token: th.secrets.site }) as HttpFetcher;
    const run = await runFetch(f, [
      { oid: sha(big), size: big.length },
      { oid: sha(small), size: small.length },
    ]);
    f.close();
    expect(run.result.failed).toEqual([]);
    expect(run.verified.get(sha(big))).toBe(sha(big));
    expect(run.verified.get(sha(small))).toBe(sha(small));
  });

  it('resumes against the hub’s Range support', async () => {
    const work = join(tempDir(), 'publisher2');
    const data = blob(2 << 20);
    await g(['init', '-q', work], '/');
    await g(['lfs', 'track', '*.bin'], work);
    writeTree(work, { 'm.bin': data });
    await g(['add', '.'], work);
    await g(['commit', '-qm', 'm'], work);
    await g(['push', '-q', th.repoUrl('resume', th.secrets.publisher), 'main'], work);
    const tmpDir = join(tempDir(), 'tmp');
    writeTree(tmpDir, { [`${sha(data)}.part`]: data.subarray(0, 1_000_000) });
    const f = createFetcher({ remote: th.repoUrl('resume'), token: th.secrets.site }) as HttpFetcher;
    const run = await runFetch(f, [{ oid: sha(data), size: data.length }], { tmpDir });
    f.close();
    expect(run.verified.get(sha(data))).toBe(sha(data));
    expect(run.result.bytesTransferred).toBe(data.length - 1_000_000);
  });

  it('uploads objects that stock git lfs fetch then downloads and fsck accepts', async () => {
    // A publisher commits LFS files; git pushes only the refs (no pre-push hook), we upload the objects.
    const work = join(tempDir(), 'ours');
    const a = blob(1 << 20);
    const b = blob(20_000);
    await g(['init', '-q', work], '/');
    await g(['lfs', 'track', '*.bin'], work);
    writeTree(work, { 'a.bin': a, 'b.bin': b });
    await g(['add', '.'], work);
    await g(['commit', '-qm', 'models'], work);
    const noHooks = join(tempDir(), 'no-hooks');
    mkdirSync(noHooks, { recursive: true });
    await g(['-c', `core.hooksPath=${noHooks}`, 'push', '-q', th.repoUrl('uploaded', th.secrets.publisher), 'main'], work);

    const objects = [a, b].map((buf) => ({ oid: sha(buf), size: buf.length, path: join(work, '.git', lfsObjectRelPath(sha(buf))) }));
    const endpoint = discoverEndpoint({ remote: th.repoUrl('uploaded'), token: th.secrets.publisher, operation: 'upload' });
    const result = await uploadObjects({ endpoint, objects });
    expect(result.uploaded).toHaveLength(2);
    // A second run finds everything there.
    const again = await uploadObjects({ endpoint, objects });
    expect(again.skipped).toHaveLength(2);

    const site = join(tempDir(), 'site');
    await gitAsync(['clone', '-q', th.repoUrl('uploaded', th.secrets.site), site], { cwd: '/', env: { ...env, GIT_LFS_SKIP_SMUDGE: '1' } });
    await g(['lfs', 'fetch'], site);
    await g(['lfs', 'checkout'], site);
    const fsck = await g(['lfs', 'fsck'], site);
    expect(fsck.stdout).toMatch(/Git LFS fsck OK/);
    expect(sha(readFileSync(join(site, 'a.bin')))).toBe(sha(a));
    expect(sha(readFileSync(join(site, 'b.bin')))).toBe(sha(b));
  });
});
