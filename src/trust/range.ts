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

async function walk(reader: CommitReader, tip: string, base: string, limit: number): Promise<Walk> {
  // Everything known to be reachable from base (parent ids of present commits included, even when absent).
  const excluded = new Set<string>();
  const stack = [base];
  while (stack.length) {
    const oid = stack.pop()!;
    if (excluded.has(oid)) continue;
    excluded.add(oid);
    const raw = await reader.read(oid);
    if (raw) stack.push(...splitCommit(raw).parents);
  }
  const commits: string[] = [];
  const seen = new Set<string>();
  const queue = [tip];
  let missing: string | undefined;
  while (queue.length) {
    const oid = queue.shift()!;
    if (seen.has(oid) || excluded.has(oid)) continue;
    seen.add(oid);
    const raw = await reader.read(oid);
    if (!raw) {
      missing ??= oid;
      continue;
    }
    commits.push(oid);
    if (commits.length > limit) return { kind: 'too-many' };
    queue.push(...splitCommit(raw).parents);
  }
  return missing ? { kind: 'missing', missing, seen: commits.length } : { kind: 'done', commits };
}
