/**
 * What a site that holds one version of a model must fetch to run another:
 * every object of the new version it does not hold, in full, or, where the
 * agent would take a chunk delta (lfs/delta.ts), only the chunks its copy of
 * the same file lacks plus the chunk index itself. Pure; chunk indexes are
 * read by the caller (small LFS objects of the registry's local cache) and
 * looked up here, never a model byte.
 *
 * The rules are the fetcher's own (DELTA_MIN_OBJECT_BYTES, deltaWorthIt, the
 * same-named file of the version the site holds as the local source), so
 * the estimate is what the site does when its store holds exactly the old
 * version. A site that also holds others (its `previous`) may fetch less.
 */
import { DELTA_MIN_OBJECT_BYTES, deltaWorthIt } from '../lfs/delta.ts';
import type { ChunkIndex } from '../lfs/cdc.ts';
import type { VersionFile } from '../store/index.ts';

export type ChunkLookup = (oid: string) => ChunkIndex | undefined;

export interface FileFetch {
  name: string;
  /** added: a new path; changed: new content at a path the old version has; removed: gone in the new version. */
  change: 'added' | 'changed' | 'removed';
  size: number;
  /** Bytes the site fetches for this file (0 when it holds the content already, under any name). */
  fetch: number;
  /** How `fetch` was worked out. */
  basis: 'held' | 'full' | 'delta' | 'full (delta would reuse too little)' | 'full (upper bound: no chunk index here to estimate a delta)' | 'removed';
}

export interface FetchEstimate {
  files: FileFetch[];
  /** Bytes of the objects the site lacks, downloaded whole. */
  full: number;
  /** Bytes the site fetches, chunk deltas counted where they apply. */
  estimate: number;
  /** Some file could take a delta but an index was not available to count it: `estimate` is then an upper bound. */
  unknown: boolean;
}

/**
 * @param held    objects the site holds (oids): the old version's files and anything else it runs
 * @param from    files of the version the site holds of this model (delta sources), empty for an install
 * @param to      files of the version it will run
 */
export function estimateFetch(held: ReadonlySet<string>, from: readonly VersionFile[], to: readonly VersionFile[], chunks: ChunkLookup): FetchEstimate {
  const files: FileFetch[] = [];
  const byName = new Map(from.map((f) => [f.name, f]));
  const counted = new Set<string>();
  let full = 0;
  let estimate = 0;
  let unknown = false;
  for (const f of to) {
    const old = byName.get(f.name);
    if (old?.oid === f.oid) continue;
    const change = old ? 'changed' : 'added';
    if (held.has(f.oid) || counted.has(f.oid)) {
      files.push({ name: f.name, change, size: f.size, fetch: 0, basis: 'held' });
      continue;
    }
    counted.add(f.oid);
    full += f.size;
    const d = deltaFetch(f, old, chunks);
    if (d.basis === 'full (upper bound: no chunk index here to estimate a delta)') unknown = true;
    estimate += d.fetch;
    files.push({ name: f.name, change, size: f.size, ...d });
  }
  const names = new Set(to.map((f) => f.name));
  for (const f of from) if (!names.has(f.name)) files.push({ name: f.name, change: 'removed', size: f.size, fetch: 0, basis: 'removed' });
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { files, full, estimate, unknown };
}

/** What the fetcher does for `f` when the site holds `old` under the same name. */
function deltaFetch(f: VersionFile, old: VersionFile | undefined, chunks: ChunkLookup): Pick<FileFetch, 'fetch' | 'basis'> {
  // The fetcher's conditions, in its order: big enough, an index, a local file of that name.
  if (f.size < DELTA_MIN_OBJECT_BYTES || !f.chunks || !old) return { fetch: f.size, basis: 'full' };
  const next = chunks(f.chunks.oid);
  // The site chunks its own copy with the new index's parameters; the old index stands for that copy only if cut the same way.
  const prev = old.chunks ? chunks(old.chunks.oid) : undefined;
  if (!next || !prev || !sameParams(next, prev)) return { fetch: f.size, basis: 'full (upper bound: no chunk index here to estimate a delta)' };
  const have = new Set(prev.chunks.map((c) => c.sha256));
  let reused = 0;
  for (const c of next.chunks) if (have.has(c.sha256)) reused += c.size;
  // The index is fetched before the decision, so it counts either way.
  if (!deltaWorthIt(reused, f.size)) return { fetch: f.size + f.chunks.size, basis: 'full (delta would reuse too little)' };
  return { fetch: f.size - reused + f.chunks.size, basis: 'delta' };
}

function sameParams(a: ChunkIndex, b: ChunkIndex): boolean {
  return a.params.min === b.params.min && a.params.avg === b.params.avg && a.params.max === b.params.max;
}
