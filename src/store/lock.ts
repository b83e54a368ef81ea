/**
 * One pass at a time per store, however it was triggered (CLI, cron, event,
 * webhook). The lock is a file created with O_EXCL holding the owner's pid
 * and that process's start time; a lock whose owner is gone (crash, kill -9,
 * reboot) is stale and taken over. The start time guards against a recycled
 * pid making a dead owner look alive, and the kernel's boot id against a
 * reboot: a service started at boot tends to get the same pid every time.
 */
import { promises as fsp, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { LockedError, StoreError, isDiskFull } from '../errors.ts';
import { describeFreeSpace } from '../util/fsutil.ts';

/** An unreadable lock younger than this may be one being written: wait rather than break it. */
const UNREADABLE_GRACE_MS = 5_000;

export interface LockOwner {
  pid: number;
  /** Kernel start time of the process (clock ticks since boot), when known. */
  start?: string;
  /** The kernel's boot id when the lock was taken (Linux): another boot means the owner is gone. */
  boot?: string;
  host: string;
  since: string;
  purpose: string;
  /** Set when the file could not be parsed: 'fresh' (maybe being written) or 'stale'. */
  unreadable?: 'fresh' | 'stale';
}

export interface StoreLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Start time of a process as the kernel reports it; undefined off Linux or when the process is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses: count fields after the last ")".
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

let cachedBootId: string | null | undefined;
/** This boot's id (Linux), or undefined elsewhere. */
export function bootId(): string | undefined {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId ?? undefined;
}

export function isOwnerAlive(owner: LockOwner): boolean {
  if (owner.unreadable) return owner.unreadable === 'fresh';
  if (owner.pid <= 0) return false; // kill(-1 or 0) would signal a whole group: never ask
  if (owner.host !== hostname()) return true; // a store on shared storage: never break another host's lock
  const boot = bootId();
  if (owner.boot !== undefined && boot !== undefined && owner.boot !== boot) return false; // taken before a reboot
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: the process exists but belongs to someone else.
  }
  if (owner.start !== undefined) {
    const now = processStartTime(owner.pid);
    if (now !== undefined && now !== owner.start) return false; // the pid was recycled
  }
  return true;
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    const text = await fsp.readFile(path, 'utf8');
    const v = JSON.parse(text) as LockOwner;
    return typeof v.pid === 'number' ? v : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // Unparsable: an owner that crashed between create and write, or one that is writing right now.
    const st = await fsp.stat(path).catch(() => null);
    if (st && Date.now() - st.mtimeMs < UNREADABLE_GRACE_MS) {
      return { pid: -1, host: hostname(), since: st.mtime.toISOString(), purpose: 'unknown (lock file being written)', unreadable: 'fresh' };
    }
    return { pid: -1, host: hostname(), since: '', purpose: 'unknown (unreadable lock file)', unreadable: 'stale' };
  }
}

/** Take the store lock or throw LockedError naming the owner. */
export async function acquireLock(path: string, purpose: string): Promise<StoreLock> {
  const me: LockOwner = { pid: process.pid, start: processStartTime(process.pid), boot: bootId(), host: hostname(), since: new Date().toISOString(), purpose };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fsp.open(path, 'wx', 0o644);
      try {
        await fh.writeFile(`${JSON.stringify(me)}\n`);
        await fh.sync();
      } catch (err) {
        // Created but not written (disk full: an inode was free, a block was not). Left behind, the
        // empty file would read as a lock being written and hold off every pass for the grace period.
        await fh.close().catch(() => {});
        await fsp.rm(path, { force: true }).catch(() => {});
        throw err;
      }
      await fh.close();
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          await fsp.rm(path, { force: true });
        },
      };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        if (isDiskFull(err)) throw new StoreError(`cannot create the store lock ${path}: disk full; ${await describeFreeSpace(path)}`, { path, errno: code, diskFull: true }, err);
        throw new StoreError(`cannot create the store lock ${path}: ${(err as Error).message}`, { path, errno: code }, err);
      }
    }
    const owner = await readOwner(path);
    if (owner === null) continue; // released meanwhile
    if (isOwnerAlive(owner)) {
      throw new LockedError(`the store is locked by pid ${owner.pid} on ${owner.host} (${owner.purpose}, since ${owner.since})`, {
        path,
        pid: owner.pid,
        host: owner.host,
        purpose: owner.purpose,
        since: owner.since,
      });
    }
    await breakStaleLock(path, owner);
  }
  throw new LockedError(`could not take the store lock ${path} (contended)`, { path });
}

/**
 * Move the stale lock aside atomically, then check it was the one we judged
 * stale: if another process replaced it in between, put it back.
 */
async function breakStaleLock(path: string, stale: LockOwner): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await fsp.rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readOwner(aside);
  if (moved && (moved.pid !== stale.pid || moved.since !== stale.since)) {
    // Someone else broke the stale lock and took it; give it back.
    await fsp.link(aside, path).catch(() => {});
  }
  await fsp.rm(aside, { force: true });
}

/** The current owner of the lock, if any (for `status`). */
export async function lockOwner(path: string): Promise<(LockOwner & { alive: boolean }) | null> {
  const owner = await readOwner(path);
  return owner ? { ...owner, alive: owner.pid > 0 && isOwnerAlive(owner) } : null;
}
