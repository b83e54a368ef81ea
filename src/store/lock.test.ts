import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { acquireLock, lockOwner, processStartTime } from './lock.ts';

describe('store lock', () => {
  it('is exclusive while held and free after release', async () => {
    const path = join(tempDir(), 'lock');
    const a = await acquireLock(path, 'pass A');
    await expect(acquireLock(path, 'pass B')).rejects.toMatchObject({ code: 'LockedError', retry: 'waiting' });
    await expect(acquireLock(path, 'pass B')).rejects.toThrow(/locked by pid \d+ .*pass A/);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, purpose: 'pass A' });
    await a.release();
    expect(existsSync(path)).toBe(false);
    const b = await acquireLock(path, 'pass B');
    await b.release();
  });

  it('takes over a lock whose process is gone', async () => {
    const path = join(tempDir(), 'lock');
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const deadPid = Number(child.stdout);
    writeFileSync(path, JSON.stringify({ pid: deadPid, host: hostname(), since: 'earlier', purpose: 'crashed pass' }));
    expect((await lockOwner(path))?.alive).toBe(false);
    const l = await acquireLock(path, 'new pass');
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    await l.release();
  });

  it('treats a live pid with a different start time as recycled (stale)', async () => {
    const path = join(tempDir(), 'lock');
    expect(processStartTime(process.pid)).toMatch(/^\d+$/);
    writeFileSync(path, JSON.stringify({ pid: process.pid, start: '1', host: hostname(), since: 'boot', purpose: 'before a reboot' }));
    const l = await acquireLock(path, 'after reboot');
    await l.release();
  });

  it('treats a lock taken before a reboot as stale, even when pid and start time match again', async () => {
    const path = join(tempDir(), 'lock');
    const held = await acquireLock(path, 'pass');
    const owner = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    expect(owner.boot).toMatch(/^[0-9a-f-]{36}$/);
    await expect(acquireLock(path, 'same boot')).rejects.toMatchObject({ code: 'LockedError' });
    // Same pid, same start ticks, same host: only the boot differs (a power cut, then systemd starts us as before).
    writeFileSync(path, JSON.stringify({ ...owner, boot: '00000000-0000-0000-0000-000000000000' }));
    expect((await lockOwner(path))?.alive).toBe(false);
    const l = await acquireLock(path, 'after reboot');
    await l.release();
    await held.release().catch(() => {});
  });

  it('treats an unreadable lock file (crash between create and write) as stale', async () => {
    const path = join(tempDir(), 'lock');
    writeFileSync(path, '');
    // Fresh: perhaps being written this instant, so it is respected.
    await expect(acquireLock(path, 'pass')).rejects.toMatchObject({ code: 'LockedError' });
    utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    const l = await acquireLock(path, 'pass');
    await l.release();
  });

  it('never breaks a lock held from another host', async () => {
    const path = join(tempDir(), 'lock');
    writeFileSync(path, JSON.stringify({ pid: 1, host: 'some-other-host', since: 'x', purpose: 'remote pass' }));
    await expect(acquireLock(path, 'pass')).rejects.toMatchObject({ code: 'LockedError' });
  });

  it.skipIf(process.getuid?.() !== 0)('after ENOSPC leaves no empty lock file behind: the next pass takes the lock at once', async () => {
    const mnt = tempDir('lock-enospc-');
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status).toBe(0);
    try {
      // Fill every block; an inode stays free, so the lock file can be created but not written.
      spawnSync('dd', ['if=/dev/zero', `of=${join(mnt, 'fill')}`, 'bs=4k'], { encoding: 'utf8' });
      const path = join(mnt, 'lock');
      await expect(acquireLock(path, 'pass A')).rejects.toThrow(/disk full/);
      expect(existsSync(path)).toBe(false);
      spawnSync('rm', [join(mnt, 'fill')]);
      const started = Date.now();
      const l = await acquireLock(path, 'pass B');
      expect(Date.now() - started).toBeLessThan(1000);
      await l.release();
    } finally {
      spawnSync('umount', ['-l', mnt]);
    }
  });
});
