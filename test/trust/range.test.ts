/**
 * mode: every against real histories made with stock git: each commit since
 * the last applied one must be signed, merged branches included, and a
 * shallow clone is deepened until the range is complete.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { git as runGit, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { UntrustedCommit } from '../../src/errors.ts';
import { buildPolicy, gitReader, verifyRegistry, type TrustPolicy } from '../../src/trust/index.ts';
import { commitsToVerify } from '../../src/trust/range.ts';
import { allowedSignersLine, sshIdentity, type SshIdentity } from './keys.ts';

const env = isolatedGitEnv();
const id = sshIdentity('ed25519', 'author@example.test');
const g = (dir: string, ...args: string[]): string => runGit(args, { cwd: dir, env }).stdout.trim();

function repo(): string {
  const dir = tempDir('modelsync-trust-range-');
  g(dir, 'init', '-q', '-b', 'main');
  return dir;
}
let n = 0;
function commit(dir: string, signed: boolean): string {
  writeTree(dir, { [`f${n++}.txt`]: `${n}\n` });
  g(dir, 'add', '-A');
  g(dir, ...(signed ? id.gitArgs : []), 'commit', '-q', ...(signed ? ['-S'] : []), '-m', `c${n}`);
  return g(dir, 'rev-parse', 'HEAD');
}

let policy: TrustPolicy;
const verify = async (dir: string, tip: string, base: string | undefined, mode: 'tip' | 'every', gitdir = join(dir, '.git'), deepen?: (d: number) => Promise<boolean>) =>
  verifyRegistry({ policy: (policy ??= await buildPolicy({ allowedSigners: { name: 'allowed_signers', text: allowedSignersLine(id as SshIdentity) } })), mode, gitdir, tip, base, now: () => new Date(), deepen });

async function refusal(p: Promise<unknown>): Promise<UntrustedCommit> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UntrustedCommit);
  return err as UntrustedCommit;
}

describe('which commits are verified', () => {
  it('every: an unsigned commit in the middle refuses a signed tip; tip mode checks only the tip', async () => {
    const dir = repo();
    const base = commit(dir, true);
    const middle = commit(dir, false);
    const tip = commit(dir, true);
    const err = await refusal(verify(dir, tip, base, 'every'));
    expect(err.code).toBe('UntrustedCommit');
    expect(err.data).toMatchObject({ commit: middle, reason: 'unsigned', tip });
    expect(err.message).toBe(`untrusted registry commit ${middle.slice(0, 12)} (below the tip ${tip.slice(0, 12)}): unsigned; nothing was changed`);
    expect((await verify(dir, tip, base, 'tip')).commits.map((c) => c.commit)).toEqual([tip]);
  });

  it('every: an unsigned commit cannot hide on a branch under a signed merge', async () => {
    const dir = repo();
    const base = commit(dir, true);
    g(dir, 'checkout', '-q', '-b', 'feature');
    const hidden = commit(dir, false);
    commit(dir, true);
    g(dir, 'checkout', '-q', 'main');
    commit(dir, true);
    g(dir, ...id.gitArgs, 'merge', '-q', '--no-ff', '-S', '-m', 'merge feature', 'feature');
    const merge = g(dir, 'rev-parse', 'HEAD');
    expect(g(dir, 'log', '--first-parent', '--format=%H', `${base}..${merge}`)).not.toContain(hidden);
    const err = await refusal(verify(dir, merge, base, 'every'));
    expect(err.data.commit).toBe(hidden);
    // Once the site applied the merge, the old branch commit is history, not a new change.
    const next = commit(dir, true);
    expect((await verify(dir, next, merge, 'every')).commits.map((c) => c.commit)).toEqual([next]);
  });

  it('every: all signed passes, and lists each commit once, newest first', async () => {
    const dir = repo();
    const base = commit(dir, false);
    const a = commit(dir, true);
    const b = commit(dir, true);
    const out = await verify(dir, b, base, 'every');
    expect(out.commits.map((c) => c.commit)).toEqual([b, a]);
    expect(out.commits[0]!.signer).toContain('author@example.test SHA256:');
    // The verdicts are remembered per commit: a second look verifies nothing again.
    expect((await verify(dir, b, base, 'every')).commits.every((c) => c.cached)).toBe(true);
  });

  it('every: reads only history newer than where tip and base meet, not all of base\'s ancestry', async () => {
    const dir = repo();
    for (let i = 0; i < 40; i++) commit(dir, false);
    const base = commit(dir, true);
    commit(dir, true);
    const tip = commit(dir, true);
    const inner = gitReader(join(dir, '.git'));
    let reads = 0;
    const counting = { read: (oid: string) => (reads++, inner.read(oid)) };
    const r = await commitsToVerify(counting, tip, base, 'every');
    expect(r).toEqual({ ok: true, commits: [tip, g(dir, 'rev-parse', 'HEAD~1')] });
    expect(reads).toBeLessThan(8);
  });

  it('every, shallow clone: deepens until the last applied commit is reached, refuses what is beyond reach', async () => {
    const origin = repo();
    const base = commit(origin, true);
    for (let i = 0; i < 5; i++) commit(origin, true);
    const unsigned = commit(origin, false);
    const tip = commit(origin, true);
    const clone = tempDir('modelsync-trust-shallow-');
    runGit(['clone', '-q', '--bare', '--depth', '1', `file://${origin}`, clone], { cwd: origin, env });
    const depths: number[] = [];
    const deepen = async (d: number): Promise<boolean> => {
      depths.push(d);
      runGit(['fetch', '-q', '--depth', String(d), 'origin', 'main'], { cwd: clone, env });
      return true;
    };
    const err = await refusal(verify(origin, tip, base, 'every', clone, deepen));
    expect(err.data.commit).toBe(unsigned);
    expect(depths.length).toBeGreaterThan(0);
    expect(depths.length).toBeLessThan(5);
    // Without a way to deepen, a shallow history is refused, never assumed good.
    const clone2 = tempDir('modelsync-trust-shallow-');
    runGit(['clone', '-q', '--bare', '--depth', '1', `file://${origin}`, clone2], { cwd: origin, env });
    const err2 = await refusal(verify(origin, tip, base, 'every', clone2));
    expect(err2.data.reason).toMatch(/is not available .* cannot verify every commit/);
  });
});
