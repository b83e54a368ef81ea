/**
 * What `plan`, `render` and `sites` read before their pure work: a registry
 * side (loaded, its templates' texts), the default branch and merge base, and
 * chunk indexes from the registry's local LFS cache. Never a model byte.
 */
import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import git from 'isomorphic-git';
import { UsageError, type Problem } from '../errors.ts';
import { desiredState } from '../fleet/desired.ts';
import type { PreviewSide } from '../fleet/preview.ts';
import { templateSources } from '../fleet/render.ts';
import { MAX_CHUNK_INDEX_BYTES, parseChunkIndex, type ChunkIndex } from '../lfs/cdc.ts';
import { lfsObjectPath } from '../registry/lfs-cache.ts';
import { loadRegistry, type LoadOptions, type Registry } from '../registry/load.ts';
import type { GitLocation } from '../registry/open.ts';
import type { RegistrySource } from '../registry/source.ts';

export async function readSide(source: RegistrySource, label: string, load: LoadOptions): Promise<PreviewSide & { problems: Problem[] }> {
  const { registry, problems } = await loadRegistry(source, load);
  const templates = new Map<string, string | null>();
  for (const src of templateSources(registry)) templates.set(src, await source.readText(src));
  return { label, commit: source.commit, registry, templates, problems };
}

/**
 * The branch a pull request merges into: origin's HEAD when the clone knows
 * it, else `main`, else `master`.
 */
export async function defaultBranch(loc: GitLocation): Promise<string> {
  try {
    const target = await git.resolveRef({ fs, gitdir: loc.gitdir, ref: 'refs/remotes/origin/HEAD', depth: 2 });
    if (target.startsWith('refs/')) return target.replace(/^refs\/(heads|remotes)\//, '');
  } catch {
    // no origin/HEAD: a local default
  }
  for (const b of ['main', 'master']) {
    try {
      await git.resolveRef({ fs, gitdir: loc.gitdir, ref: `refs/heads/${b}` });
      return b;
    } catch {
      // try the next
    }
  }
  throw new UsageError('cannot tell the default branch (no origin/HEAD, main or master); give --base <rev>');
}

export async function mergeBase(loc: GitLocation, a: string, b: string, names: string): Promise<string> {
  const bases = (await git.findMergeBase({ fs, gitdir: loc.gitdir, oids: [a, b] })) as string[];
  if (bases.length === 0) throw new UsageError(`${names} have no common ancestor; give --base <rev>`);
  return bases[0]!;
}

/**
 * Chunk indexes of every file the sites of either registry would run, from
 * `<gitdir>/lfs/objects` (publish puts them there; `git lfs pull --include
 * '**\/.chunks/**'` fetches only them). Missing or unusable ones are left out:
 * the estimate then says it is an upper bound.
 */
export async function readChunkIndexes(gitdir: string | undefined, registries: readonly Registry[]): Promise<Map<string, ChunkIndex>> {
  const out = new Map<string, ChunkIndex>();
  if (!gitdir) return out;
  const wanted = new Map<string, { oid: string; size: number; file: { oid: string; size: number } }>();
  for (const registry of registries) {
    for (const site of registry.sites.keys()) {
      let models;
      try {
        models = desiredState(registry, site).models;
      } catch {
        continue;
      }
      for (const m of models) for (const f of m.files ?? []) if (f.chunks) wanted.set(f.chunks.oid, { ...f.chunks, file: f });
    }
  }
  for (const [oid, w] of wanted) {
    if (w.size > MAX_CHUNK_INDEX_BYTES) continue;
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(lfsObjectPath(gitdir, oid));
    } catch {
      continue;
    }
    try {
      out.set(oid, parseChunkIndex(bytes, w.file));
    } catch {
      // a damaged index: the site would fall back to a full download, and so does the estimate
    }
  }
  return out;
}
