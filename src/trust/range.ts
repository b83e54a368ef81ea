/**
 * Which commits a pass must verify.
 *
 * `tip`: the new tip only. `every`: every commit reachable from the new tip
 * that is not reachable from the last applied one (`git rev-list base..tip`),
 * merges' second parents included. A merge signed by a trusted key says
 * nothing about the commits it brings in, so an unsigned commit on a merged
 * branch is in the set and refuses the tip, however the merge was signed.
 *
 * A shallow clone lacks the history: the walk says what is missing and the
 * caller deepens the fetch until the range is complete. Whatever cannot be
 * read is never assumed good: the range is refused instead.
 */
import { splitCommit } from './commit-object.ts';

export interface CommitReader {
  /** The commit object's content, or undefined when this repository does not have it (beyond a shallow boundary). */
  read(oid: string): Promise<Uint8Array | undefined>;
  /** Fetch history to this depth below the tip; false when no more can be had. Absent: the history is what it is. */
  deepen?(depth: number): Promise<boolean>;
}

export type VerifyMode = 'tip' | 'every';

export type RangeResult =
  | { ok: true; commits: string[]; deepenedTo?: number }
  | { ok: false; reason: string; at: string };

/** At most this many commits per range: a site far behind gets a clear refusal, not an unbounded walk. */
export const MAX_RANGE_COMMITS = 10_000;

export async function commitsToVerify(reader: CommitReader, tip: string, base: string | undefined, mode: VerifyMode, limit = MAX_RANGE_COMMITS): Promise<RangeResult> {
  if (mode === 'tip' || !base || base === tip) return { ok: true, commits: [tip] };
  let depth = 0;
  for (;;) {
    const r = await walk(reader, tip, base, limit);
    if (r.kind === 'done') return { ok: true, commits: r.commits, ...(depth ? { deepenedTo: depth } : {}) };
    if (r.kind === 'too-many') return { ok: false, at: tip, reason: `more than ${limit} commits since the last applied commit ${base.slice(0, 12)}; verify them with \`modelsync validate --verify-signatures --base ${base.slice(0, 12)}\` and apply the tip with mode: tip once` };
    if (!reader.deepen) return { ok: false, at: r.missing, reason: `history between ${base.slice(0, 12)} and ${tip.slice(0, 12)} is not available (commit ${r.missing.slice(0, 12)} is missing); cannot verify every commit` };
    // Doubling keeps the number of fetches logarithmic in how far behind the site is.
    depth = Math.max(depth * 2, r.seen + 2);
    if (depth > limit + 2 || !(await reader.deepen(depth))) {
      return { ok: false, at: r.missing, reason: `history between ${base.slice(0, 12)} and ${tip.slice(0, 12)} could not be fetched (commit ${r.missing.slice(0, 12)} is missing); cannot verify every commit` };
    }
  }
}

type Walk = { kind: 'done'; commits: string[] } | { kind: 'missing'; missing: string; seen: number } | { kind: 'too-many' };

const TIP = 1;
const BASE = 2;

/**
 * git's own rev-list base..tip walk: commits are painted from both ends and
 * taken newest first, so only history newer than where the two meet is read,
 * not the whole ancestry of base. A commit is excluded only when painted from
 * base, i.e. when it truly is an ancestor of base; clock skew can at worst
 * make the walk take an ancestor of base as new (a refusal too many, never
 * one too few).
 */
async function walk(reader: CommitReader, tip: string, base: string, limit: number): Promise<Walk> {
  const paint = new Map<string, number>();
  const info = new Map<string, { time: number; parents: string[] } | null>();
  const load = async (oid: string): Promise<{ time: number; parents: string[] } | null> => {
    if (!info.has(oid)) {
      const raw = await reader.read(oid);
      const c = raw ? splitCommit(raw) : null;
      info.set(oid, c ? { time: c.committerTime, parents: c.parents } : null);
    }
    return info.get(oid)!;
  };
  // Newest first; missing commits (unknown time) sort last.
  const queue: Array<{ oid: string; time: number }> = [];
  const taken = new Set<string>();
  const push = async (oid: string, flag: number): Promise<void> => {
    const had = paint.get(oid) ?? 0;
    if ((had | flag) === had) return;
    paint.set(oid, had | flag);
    // Queued: the new paint travels on when it is taken. Taken already (as new): again, to carry base's paint down.
    if (had !== 0 && !taken.has(oid)) return;
    if (taken.has(oid) && queue.some((q) => q.oid === oid)) return;
    const c = await load(oid);
    const time = c ? c.time : -Infinity;
    let at = queue.findIndex((q) => q.time < time);
    if (at === -1) at = queue.length;
    queue.splice(at, 0, { oid, time });
  };
  await push(base, BASE);
  await push(tip, TIP);
  const commits: string[] = [];
  const missing: string[] = [];
  // Stop once nothing left in the queue can lead to a commit not reachable from base.
  while (queue.some((q) => paint.get(q.oid) !== (TIP | BASE) && paint.get(q.oid) !== BASE)) {
    const { oid } = queue.shift()!;
    taken.add(oid);
    const flags = paint.get(oid)!;
    const c = info.get(oid) ?? null;
    if (flags & BASE) {
      if (c) for (const p of c.parents) await push(p, BASE);
      continue;
    }
    if (!c) {
      missing.push(oid);
      continue;
    }
    commits.push(oid);
    if (commits.length > limit) return { kind: 'too-many' };
    for (const p of c.parents) await push(p, TIP);
  }
  // A commit taken as new and painted from base later (clock skew) is an ancestor of base after all.
  const fresh = commits.filter((oid) => !(paint.get(oid)! & BASE));
  const gap = missing.find((oid) => !(paint.get(oid)! & BASE));
  return gap ? { kind: 'missing', missing: gap, seen: fresh.length } : { kind: 'done', commits: fresh };
}
