/**
 * Every connection the hub holds is a file descriptor, and so is every file
 * it writes, every git pipe and every LFS object it streams. A process whose
 * open-file limit is below the connection cap fails to accept (EMFILE) well
 * before the cap says "full": say so at start, not under a fleet's load.
 */
import { readFileSync } from 'node:fs';

/** Descriptors kept for what is not a connection: repositories, LFS files, git http-backend pipes, site report writes. */
export const FD_RESERVE = 1024;

/** The process's soft open-file limit (Node raises it to the hard limit at start), or null where /proc is not there. */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | null {
  try {
    const line = read().split('\n').find((l) => l.startsWith('Max open files'));
    const v = line?.trim().split(/\s+/)[3];
    if (v === 'unlimited') return Number.POSITIVE_INFINITY;
    const n = Number(v);
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** A warning when `limit` cannot hold `maxConnections` plus the reserve; null when it can (or is unknown). */
export function fdLimitProblem(limit: number | null, maxConnections: number): string | null {
  if (limit === null || limit >= maxConnections + FD_RESERVE) return null;
  return `the open-file limit (${limit}) is below --max-connections (${maxConnections}) plus ${FD_RESERVE} for files and git: past about ${Math.max(0, limit - FD_RESERVE)} connections the hub cannot accept more (EMFILE). Raise it (systemd LimitNOFILE=, ulimit -n) or lower --max-connections`;
}
