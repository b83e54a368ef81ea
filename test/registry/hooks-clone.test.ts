/**
 * A fresh clone of a registry: `modelsync hooks install` sets up what `init`
 * set (core.hooksPath, modelsync.bin, the LFS filter, the branch sites
 * follow), so the next `git commit` runs the hooks and finds modelsync
 * without it being on PATH.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, cli, git, isolatedGitEnv, tempDir } from '../helpers/env.ts';

const env = isolatedGitEnv();

describe('hooks install in a fresh clone', () => {
  it('sets modelsync.bin and the branch, so the next commit is validated and not refused', () => {
    const root = tempDir('hooks-clone-');
    const origin = join(root, 'registry');
    // Without the example models: the clone needs no LFS server.
    expect(cli(['init', origin, '--bare-example'], { cwd: root, env }).status).toBe(0);
    const bare = join(root, 'hub.git');
    git(['clone', '-q', '--bare', origin, bare], { cwd: root, env });
    const clone = join(root, 'clone');
    git(['clone', '-q', bare, clone], { cwd: root, env });

    const r = cli(['hooks', 'install'], { cwd: clone, env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`modelsync.bin = ${CLI}`);
    expect(git(['config', '--get', 'modelsync.bin'], { cwd: clone, env }).stdout.trim()).toBe(CLI);
    expect(git(['config', '--get', 'modelsync.branch'], { cwd: clone, env }).stdout.trim()).toBe('main');
    expect(git(['config', '--get', 'filter.lfs.process'], { cwd: clone, env }).stdout.trim()).toBe('git-lfs filter-process');

    // modelsync is not on PATH: the hook finds it through modelsync.bin. A good commit passes ...
    const noAuto = { ...env, MODELSYNC_NO_AUTOPUSH: '1' };
    writeFileSync(join(clone, 'sites/README.md'), 'sites, edited in a clone\n');
    const ok = git(['commit', '-qam', 'edit in a clone'], { cwd: clone, env: noAuto, allowFail: true });
    expect(ok.stderr).not.toContain('cannot find the modelsync command');
    expect(ok.status, ok.stderr).toBe(0);
    // ... and a bad one is refused by validate, positioned.
    writeFileSync(join(clone, 'sites/alpha.yaml'), 'schedule: "61 * * * *"\n');
    git(['add', '-A'], { cwd: clone, env });
    const bad = git(['commit', '-qm', 'bad cron'], { cwd: clone, env: noAuto, allowFail: true });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr + bad.stdout).toContain('sites/alpha.yaml:1:11: schedule: "61 * * * *" is not a valid cron expression (minute 61 is out of 0–59)');
  });
});
