/**
 * A name git can store but no checkout should hold (`notes\readme.txt`,
 * `..`, `.GIT`, control characters), in registry/ or at the root: validate
 * and every agent report it as a problem naming the path, never an internal
 * error from the Git library, and the agent keeps running.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, git, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current, startAgent } from '../agent/helpers/agent.ts';

const env = isolatedGitEnv();

function registry(): TestRegistry {
  const reg = TestRegistry.init(tempDir('sec-names-reg-'), env);
  reg.addVersion('tiny', '1', { 'w.bin': bytes(1000, 1) });
  reg.addVersion('tiny', '2', { 'w.bin': bytes(1000, 2) });
  reg.setCurrent('tiny', '1');
  reg.site('alpha', {});
  reg.commit('tiny 1');
  return reg;
}

/**
 * A commit on main (parent: HEAD) whose tree is HEAD's plus one entry `name` inside `dir`
 * ('' for the root), made with git's plumbing: no porcelain would let such a name in.
 */
function commitWithEntry(reg: TestRegistry, dir: string, name: string, kind: 'blob' | 'tree' = 'blob'): string {
  const run = (args: string[], input?: string): string => git(args, { cwd: reg.dir, env, input }).stdout.trim();
  const blob = run(['hash-object', '-w', '--stdin'], 'hello\n');
  const leaf = kind === 'blob' ? `100644 blob ${blob}` : `040000 tree ${run(['mktree'], `100644 blob ${blob}\tinside.txt\n`)}`;
  // Rebuild the trees from dir up to the root, each with its changed child.
  const parts = dir === '' ? [] : dir.split('/');
  let entry = `${leaf}\t${name}`;
  for (let i = parts.length; i >= 0; i--) {
    const here = parts.slice(0, i).join('/');
    const listing = run(['ls-tree', here === '' ? 'HEAD' : `HEAD:${here}`]).split('\n').filter(Boolean);
    const child = i < parts.length ? parts[i]! : undefined;
    const kept = listing.filter((l) => child === undefined || l.split('\t')[1] !== child);
    const tree = run(['mktree'], `${[...kept, entry].join('\n')}\n`);
    entry = `040000 tree ${tree}\t${parts[i - 1] ?? ''}`;
    if (i === 0) {
      const commit = run(['commit-tree', tree, '-p', 'HEAD', '-m', `add ${JSON.stringify(name)} to ${dir || 'the root'}`]);
      run(['update-ref', 'refs/heads/main', commit]);
      return commit;
    }
  }
  throw new Error('unreachable');
}

const CASES: Array<[string, string, 'blob' | 'tree', RegExp]> = [
  ['registry', 'notes\\readme.txt', 'blob', /registry\/notes\\readme\.txt.*backslash/],
  ['', 'notes\\readme.txt', 'blob', /^notes\\readme\.txt.*backslash/m],
  ['registry', '..', 'tree', /registry\/\.\..*"\.\."/],
  ['', '.GIT', 'tree', /^\.GIT.*\.git/m],
  ['registry/tiny', '.git', 'tree', /registry\/tiny\/\.git.*\.git/],
  ['', 'bell\u0007name', 'blob', /bell\\u0007name.*control character/],
];

describe('unsafe names in a registry tree', () => {
  it.each(CASES)('validate --rev reports %s/%s as a problem naming the path', (dir, name, kind, expected) => {
    const reg = registry();
    const commit = commitWithEntry(reg, dir, name, kind);
    const r = cli(['validate', '--repo', reg.dir, '--rev', commit], { cwd: reg.dir, env });
    expect(r.stdout + r.stderr).not.toMatch(/internal error|UnsafeFilepath/);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(expected);
  });

  it('validate of the working tree reports a backslash or a control character in a file name', () => {
    const reg = registry();
    mkdirSync(join(reg.dir, 'registry/tiny/1'), { recursive: true });
    writeFileSync(join(reg.dir, 'registry/tiny/1/notes\\readme.txt'), 'x\n');
    writeFileSync(join(reg.dir, 'esc\u001b[2Jname'), 'x\n');
    const r = cli(['validate', '--repo', reg.dir], { cwd: reg.dir, env });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/registry\/tiny\/1\/notes\\readme\.txt:1:1: .*backslash/);
    expect(r.stdout).toMatch(/esc\\u001b\[2Jname:1:1: .*control character/);
    // Escaped: the raw escape never reaches the terminal.
    expect(r.stdout).not.toContain('\u001b');
  });

  it('an agent reports the commit as an invalid registry, changes nothing, and applies the next good commit', async () => {
    const reg = registry();
    const store = join(tempDir('sec-names-store-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store });
    await agent.whenIdle();
    expect(current(store, 'tiny')).toBe('1');

    // tiny 2 with a bad name beside it, as the tip: none of it may apply.
    reg.setCurrent('tiny', '2');
    reg.commit('tiny 2');
    commitWithEntry(reg, 'registry', 'notes\\readme.txt');
    const bad = await agent.request('manual');
    expect(bad.result.status).toBe('failed');
    const message = bad.result.errors.map((e) => `${e.code}: ${e.message}`).join('\n');
    expect(message).toMatch(/ValidationError: .*registry\/notes\\readme\.txt/s);
    expect(message).not.toMatch(/UnsafeFilepath|internal error/);
    expect(current(store, 'tiny')).toBe('1');

    // The agent keeps running: the next good commit (the index still holds tiny 2's tree) applies.
    reg.git('commit', '-q', '-m', 'remove the bad name');
    const good = await agent.request('manual');
    expect(good.result.status).not.toBe('failed');
    expect(current(store, 'tiny')).toBe('2');
    await agent.stop();
  });
});
