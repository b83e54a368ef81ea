/**
 * Retention: per model keep `current`, `previous`, the N newest other
 * versions and anything protected (pins, what a pass is about to use); then
 * remove objects no version links to any more. An object's link count says
 * whether a version uses it, so nothing has to be re-read or re-hashed.
 */
import { promises as fsp } from 'node:fs';
import { inferScheme, sortVersions } from '../registry/versions.ts';
import { fsyncDir } from '../util/fsutil.ts';
import { dirname } from 'node:path';
import type { StoreLayout } from './layout.ts';
import { ObjectStore, storeFsError } from './objects.ts';
import { KeptChunkIndexes } from './chunk-indexes.ts';
import { dirFiles, listModels, observeModel, removeModel, removeVersion } from './versions.ts';

export interface GcOptions {
  keep: number;
  dryRun?: boolean;
  /** Versions that must stay whatever their age, by model. */
  protect?: ReadonlyMap<string, ReadonlySet<string>>;
  /** Models removed whole, current and previous included (models the site no longer selects, on request). */
  removeModels?: readonly string[];
}

export interface GcReport {
  dryRun: boolean;
  keep: number;
  versionsRemoved: Array<{ model: string; version: string }>;
  /** Models removed whole (removeModels). */
  modelsRemoved: string[];
  objectsRemoved: number;
  bytesFreed: number;
}

/** Oldest first: by the versions' scheme when they share one, else by build time. */
async function orderVersions(layout: StoreLayout, model: string, versions: string[]): Promise<string[]> {
  const scheme = inferScheme(versions);
  if (scheme) return sortVersions(versions, scheme);
  const times = new Map<string, number>();
  for (const v of versions) times.set(v, (await fsp.stat(layout.versionDir(model, v)).catch(() => null))?.mtimeMs ?? 0);
  return [...versions].sort((a, b) => times.get(a)! - times.get(b)! || (a < b ? -1 : 1));
}

export async function planRetention(
  layout: StoreLayout, keep: number, protect?: GcOptions['protect'], skip: readonly string[] = [],
): Promise<Array<{ model: string; version: string }>> {
  const out: Array<{ model: string; version: string }> = [];
  for (const model of await listModels(layout)) {
    if (skip.includes(model)) continue;
    const obs = await observeModel(layout, model);
    const kept = new Set<string>([...(protect?.get(model) ?? [])]);
    if (obs.current) kept.add(obs.current);
    if (obs.previous) kept.add(obs.previous);
    const others = (await orderVersions(layout, model, obs.versions)).filter((v) => !kept.has(v));
    const drop = others.slice(0, Math.max(0, others.length - keep));
    for (const version of drop) out.push({ model, version });
  }
  return out;
}

export async function collectGarbage(layout: StoreLayout, opts: GcOptions): Promise<GcReport> {
  const dryRun = Boolean(opts.dryRun);
  const present = await listModels(layout);
  const wholeModels = (opts.removeModels ?? []).filter((m) => present.includes(m));
  const removals = await planRetention(layout, opts.keep, opts.protect, wholeModels);
  // Links each removal takes away from each inode, to know which objects end up unused.
  const dropped = new Map<number, number>();
  const countLinks = async (dir: string): Promise<void> => {
    for (const f of await dirFiles(dir)) dropped.set(f.ino, (dropped.get(f.ino) ?? 0) + 1);
  };
  for (const r of removals) await countLinks(layout.versionDir(r.model, r.version));
  for (const m of wholeModels) await countLinks(layout.modelDir(m));
  const objects = new ObjectStore(layout);
  const unused: Array<{ path: string; size: number }> = [];
  for await (const o of objects.list()) {
    const st = await fsp.stat(o.path);
    if (st.nlink - (dropped.get(st.ino) ?? 0) <= 1) unused.push({ path: o.path, size: o.size });
  }
  const report: GcReport = {
    dryRun,
    keep: opts.keep,
    versionsRemoved: removals,
    modelsRemoved: wholeModels,
    objectsRemoved: unused.length,
    bytesFreed: unused.reduce((n, o) => n + o.size, 0),
  };
  if (dryRun) return report;
  try {
    for (const r of removals) await removeVersion(layout, r.model, r.version);
    for (const m of wholeModels) await removeModel(layout, m);
    const dirs = new Set<string>();
    for (const o of unused) {
      // Re-check: only remove an object that really has no other link now.
      const st = await fsp.stat(o.path).catch(() => null);
      if (!st || st.nlink > 1) continue;
      await fsp.rm(o.path, { force: true });
      dirs.add(dirname(o.path));
    }
    for (const d of dirs) await fsyncDir(d).catch(() => {});
    // An object's kept chunk index goes with it (and any left by a crash between the two).
    await new KeptChunkIndexes(layout).sweep((oid) => fsp.stat(layout.objectPath(oid)).then(() => true, (e: NodeJS.ErrnoException) => e.code !== 'ENOENT'));
  } catch (err) {
    throw storeFsError('garbage collection failed', err);
  }
  return report;
}
