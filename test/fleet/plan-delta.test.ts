/**
 * The delta estimate of `plan` is honest: publish two versions of a 6 MiB
 * model with a known edit, plan the change, then let a real site reconcile
 * from a real hub, and compare the estimate with the bytes it fetched.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { reconcile } from '../../src/reconcile/index.ts';
import { cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';

let env: NodeJS.ProcessEnv;
let th: TestHub;
beforeAll(async () => {
  env = { ...isolatedGitEnv(), MODELSYNC_NO_AUTOPUSH: '1' };
  th = await startTestHub({ tokens: true, sites: ['alpha'] });
});

/** `n` bytes that never repeat (so chunks are unique), reproducible. */
function noise(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let off = 0, i = 0; off < n; off += 32, i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

describe('plan: the chunk-delta estimate against a real reconcile', () => {
  it('is within 10% of the bytes the site then fetches', async () => {
    const root = tempDir();
    const repo = join(root, 'reg');
    const run = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      const r = await cliAsync(args, { cwd: repo, env: { ...env, ...extra } });
      if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    const g = (...args: string[]) => gitAsync(args, { cwd: repo, env });
    expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
    await g('remote', 'add', 'origin', th.repoUrl('models', th.secrets.publisher));
    const v1 = noise(6 << 20, 'v1');
    writeFileSync(join(root, 'w.bin'), v1);
    await run(['publish', 'big', '1', join(root, 'w.bin')]);
    writeFileSync(join(repo, 'sites/alpha.yaml'), 'models: [big]\n');
    await g('add', 'sites/alpha.yaml');
    await g('commit', '-q', '-m', 'site alpha runs big');
    await g('push', '-q', 'origin', 'main');

    const store = join(tempDir('plan-delta-store-'), 'store');
    const pass = () => reconcile({ site: 'alpha', registry: `${th.url}/models.git`, store, token: th.secrets.bySite.alpha, logger: pino({ level: 'silent' }) });
    expect((await pass()).errors).toEqual([]);

    // The pull request: v2 is v1 with 40 KiB inserted in the middle and a few bytes changed near the start.
    await g('checkout', '-q', '-b', 'bigger');
    const v2 = Buffer.concat([v1.subarray(0, 3 << 20), noise(40 * 1024, 'insert'), v1.subarray(3 << 20)]);
    v2.write('edited', 100_000);
    writeFileSync(join(root, 'w.bin'), v2);
    await run(['publish', 'big', '2', join(root, 'w.bin')]);

    const plan = JSON.parse(await run(['plan', '--format', 'json'])) as { sites: Array<{ site: string; models: Array<{ model: string; kind: string; full: number; estimate: number; unknown: boolean; files: Array<{ basis: string }> }> }> };
    expect(plan.sites.map((s) => s.site)).toEqual(['alpha']);
    const m = plan.sites[0]!.models[0]!;
    expect(m).toMatchObject({ model: 'big', kind: 'upgrade', full: v2.length, unknown: false });
    expect(m.files[0]!.basis).toBe('delta');

    // What the CI jobs in docs/registry.md do: a clone without LFS content, then only the chunk indexes.
    await g('push', '-q', 'origin', 'bigger');
    const ci = join(root, 'ci');
    await gitAsync(['clone', '-q', th.repoUrl('models', th.secrets.publisher), ci], { cwd: root, env: { ...env, GIT_LFS_SKIP_SMUDGE: '1' } });
    await gitAsync(['checkout', '-q', 'bigger'], { cwd: ci, env: { ...env, GIT_LFS_SKIP_SMUDGE: '1' } });
    const noIndexes = JSON.parse((await cliAsync(['plan', '--base', 'origin/main', '--head', 'HEAD', '--format', 'json'], { cwd: ci, env })).stdout) as typeof plan;
    expect(noIndexes.sites[0]!.models[0]).toMatchObject({ estimate: v2.length, unknown: true });
    await gitAsync(['lfs', 'pull', '--include=registry/**/.chunks/**'], { cwd: ci, env });
    expect(readFileSync(join(ci, 'registry/big/2/w.bin'), 'utf8')).toMatch(/^version https:\/\/git-lfs/); // still a pointer: no model bytes
    const inCi = JSON.parse((await cliAsync(['plan', '--base', 'origin/main', '--head', 'HEAD', '--format', 'json'], { cwd: ci, env })).stdout) as typeof plan;
    expect(inCi.sites[0]!.models[0]!.estimate).toBe(m.estimate);

    // Merge and deploy.
    await g('checkout', '-q', 'main');
    await g('merge', '-q', '--ff-only', 'bigger');
    await g('push', '-q', 'origin', 'main');
    const second = await pass();
    expect(second.errors).toEqual([]);
    expect(second.changed).toEqual([{ model: 'big', from: '1', to: '2' }]);
    // A delta really happened (far below the full size), and the estimate is within 10% of it.
    expect(second.bytesFetched).toBeLessThan(v2.length / 4);
    expect(Math.abs(m.estimate - second.bytesFetched) / second.bytesFetched).toBeLessThan(0.1);
  });
});
