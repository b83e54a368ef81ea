/**
 * `--rev`, `--base`, `--head` take git's ancestry suffixes (`HEAD~1`, `HEAD^`,
 * `main^2`), as CI jobs write them; a suffix past the root says why.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, git, isolatedGitEnv, tempDir } from '../helpers/env.ts';

describe('revisions with ~N and ^N', () => {
  it('validate --rev HEAD~1 / HEAD^ / a merge parent ^2, and plan --base HEAD~1', () => {
    const env = isolatedGitEnv();
    const dir = join(tempDir('revisions-'), 'reg');
    expect(cli(['init', dir, '--bare-example'], { cwd: tempDir(), env }).status).toBe(0);
    const g = (...a: string[]) => git(a, { cwd: dir, env }).stdout.trim();
    const good = g('rev-parse', 'HEAD');
    // A side branch whose commit is broken, merged into main: HEAD^2 is the broken side, HEAD^ the good main.
    g('checkout', '-q', '-b', 'side');
    writeFileSync(join(dir, 'registry/model_registry.yaml'), 'models: {face: {curent_version: "1"}}\n');
    g('commit', '-qam', 'broken', '--no-verify');
    const broken = g('rev-parse', 'HEAD');
    g('checkout', '-q', 'main');
    writeFileSync(join(dir, 'README.txt'), 'main moves on\n');
    g('add', '-A');
    g('commit', '-qm', 'main moves on', '--no-verify');
    g('merge', '-q', '--no-ff', '--no-verify', '-m', 'merge side', 'side');

    const v = (rev: string) => cli(['validate', '--rev', rev], { cwd: dir, env });
    expect(v('HEAD').status).toBe(1);
    expect(v('HEAD^').status).toBe(0);
    expect(v('HEAD^1').status).toBe(0);
    expect(v('HEAD~2').status).toBe(0);
    expect(v('HEAD^2').status).toBe(1);
    expect(v('HEAD^2~1').status).toBe(0);
    expect(v(`${broken.slice(0, 10)}^`).status).toBe(0);
    expect(g('rev-parse', 'HEAD~2')).toBe(good);
    const past = v('HEAD~9');
    expect(past.status).toBe(1);
    expect(past.stderr).toContain('cannot resolve "HEAD~9"');
    expect(past.stderr).toContain('has no parent');
    const unknown = v('nosuchbranch~1');
    expect(unknown.stderr).toContain('give a branch, tag, commit id, optionally with ~N or ^N');

    const plan = cli(['plan', '--base', 'HEAD~2', '--head', 'HEAD^'], { cwd: dir, env });
    expect(plan.status, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/changes nothing/);
  });
});
