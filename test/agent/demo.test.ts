/**
 * `npm run demo` end to end, as a new user runs it: the real CLI in its own
 * process group, on a PATH with git but without git-lfs (modelsync does LFS
 * itself). It must exit 0, show every site converging, the conflict and the
 * rollback, and leave no process behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, tempDir } from '../helpers/env.ts';

function pathWithoutGitLfs(): string {
  const bin = join(tempDir('demo-path-'), 'bin');
  mkdirSync(bin);
  const gitPath = spawnSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).stdout.trim();
  symlinkSync(gitPath, join(bin, 'git'));
  symlinkSync(process.execPath, join(bin, 'node'));
  return bin;
}

describe('modelsync demo', () => {
  it('runs the quick start and exits 0 without git-lfs, leaving no process behind', async () => {
    const PATH = pathWithoutGitLfs();
    expect(spawnSync('sh', ['-c', 'command -v git-lfs'], { env: { PATH } }).status).not.toBe(0);
    const child = spawn(process.execPath, [CLI, 'demo'], {
      cwd: ROOT,
      env: { PATH, HOME: tempDir('demo-home-'), LANG: 'C' },
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
    if (code !== 0) console.error(stdout, stderr);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^ {3}alpha +Ready /m);
    expect(stdout).toMatch(/alpha +converged +\d+ ms after the push: face_recognition 2025-12-08 → 2026-01-15/);
    expect(stdout).toMatch(/beta +converged +\d+ ms after the push/);
    expect(stdout).toMatch(/gamma +converged +\d+ ms after the push: face_recognition stays 2025-11-20 \(site override\)/);
    expect(stdout).toMatch(/gamma: CONFLICT — active 2026-01-15/);
    // Said plainly: what is active, how it got there, how it compares with the declared version.
    expect(stdout).toMatch(/gamma: CONFLICT — active 2026-01-15 was put in place on the site \(the registry's 2025-11-20 was applied last\) and is newer than 2025-11-20, the declared version; left alone/);
    expect(stdout).toMatch(/gamma +converged +\d+ ms after the push: face_recognition stays 2026-01-15: the version put in place on the site is newer than the registry's, so the conflict stays and is reported/);
    expect(stdout).not.toMatch(/still its local change|the version last applied from the registry and/);
    expect(stdout).toMatch(/\$ modelsync rollback face_recognition/);
    expect(stdout).toMatch(/alpha +converged +\d+ ms after the push: face_recognition 2026-01-15 → 2025-12-08/);
    expect(stdout).toMatch(/sentinel restarted, health check passed/);
    expect(stdout).toMatch(/gamma +Conflict +[0-9a-f]{12}/);
    expect(stdout).toMatch(/push → every site converged: publish \d+ ms, rollback \d+ ms/);
    expect(stdout).toMatch(/Everything stopped; \S+ removed\./);
    // Nothing of the demo's process group survives it. A <defunct> entry is a process that has
    // already exited (tsx's esbuild child, not yet reaped by init): not one left running.
    const running = (): string[] =>
      spawnSync('ps', ['-o', 'pid=,args=', '-g', String(child.pid)], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.trim()).filter((l) => l && !l.includes('<defunct>'));
    for (let i = 0; i < 20 && running().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(running()).toEqual([]);
    // Service commands run in sessions of their own: look for anything still naming the demo's directory.
    const dir = /in (\/\S+modelsync-demo-\w+)/.exec(stdout)![1]!;
    const named = spawnSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(dir));
    expect(named).toEqual([]);
  }, 180_000);
});
