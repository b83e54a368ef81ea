/**
 * Real small filesystems for disk-full tests: a tmpfs mounted under a temp
 * dir (needs root, as on our CI machines; callers skip elsewhere), unmounted
 * after the test file.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, expect } from 'vitest';
import { tempDir } from './env.ts';

/** Whether this process may mount a tmpfs (root, and a kernel that lets it). */
export function canMount(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = tempDir('tmpfs-probe-');
  const ok = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe]).status === 0;
  if (ok) spawnSync('umount', [probe]);
  return ok;
}

const mounted: string[] = [];
afterAll(() => {
  for (const m of mounted.splice(0)) spawnSync('umount', ['-l', m]);
});

/** A tmpfs with these mount options (`size=1m`, `nr_inodes=24`), unmounted after the file's tests. */
export function mountTmpfs(opts: string, prefix = 'tmpfs-mnt-'): string {
  const mnt = tempDir(prefix);
  expect(spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', mnt]).status).toBe(0);
  mounted.push(mnt);
  return mnt;
}
