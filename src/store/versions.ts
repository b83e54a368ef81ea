/**
 * Version directories and the `current` / `previous` links.
 *
 * A version directory is built under tmp/ as hard links into objects/, every
 * directory fsynced, then renamed into `models/<model>/<version>` in one
 * step: a reader (or a crash) sees no directory or a complete one. Links are
 * switched by creating a new symlink under tmp/ and renaming it over the old
 * one, then fsyncing the model directory, so `current` always names a
 * complete version.
 */
import { promises as fsp } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir } from '../util/fsutil.ts';
import { mkdirDurable } from './durable-dirs.ts';
import { safeJoin } from '../util/safe-path.ts';
import { CURRENT, PREVIOUS, type StoreLayout } from './layout.ts';
import { readdirOrEmpty, storeFsError, type ObjectRef } from './objects.ts';
import { noBarrier, type Barrier } from './barrier.ts';

export interface VersionFile extends ObjectRef {
  /** Path inside the version (from the manifest, already validated as a safe relative path). */
  name: string;
  /** The file's chunk index LFS object (manifest `files[].chunks`), for chunk-delta downloads. */
  chunks?: ObjectRef;
}

export interface ObservedModel {
  model: string;
  /** Version `current` points to, when it points to an existing directory. */
  current?: string;
  previous?: string;
  /** Version directories present (complete by construction). */
  versions: string[];
}

function tmpName(layout: StoreLayout, kind: string): string {
  return join(layout.tmpDir, `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** The version a link names, or undefined when the link is missing or dangling. */
export async function readLink(layout: StoreLayout, model: string, which: typeof CURRENT | typeof PREVIOUS): Promise<string | undefined> {
  const link = layout.link(model, which);
  let target: string;
  try {
    target = await fsp.readlink(link);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EINVAL') return undefined;
    throw storeFsError(`cannot read ${link}`, err);
  }
  if (target.includes('/')) return undefined; // not a link we made
  try {
    const st = await fsp.stat(join(layout.modelDir(model), target));
    return st.isDirectory() ? target : undefined;
  } catch {
    return undefined;
  }
}

export async function observeModel(layout: StoreLayout, model: string): Promise<ObservedModel> {
  const entries = await fsp.readdir(layout.modelDir(model), { withFileTypes: true }).catch(() => []);
  const versions = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  return { model, current: await readLink(layout, model, CURRENT), previous: await readLink(layout, model, PREVIOUS), versions };
}

export async function listModels(layout: StoreLayout): Promise<string[]> {
  const entries = await fsp.readdir(layout.modelsDir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/**
 * Whether a version directory holds exactly the manifest's files as links to
 * their objects. Stat only: no model byte is read (objects were verified on entry).
 */
export async function versionIntact(layout: StoreLayout, model: string, version: string, files: readonly VersionFile[]): Promise<boolean> {
  for (const f of files) {
    const [a, b] = await Promise.all([
      fsp.lstat(layout.versionFile(model, version, f.name)).catch(() => null),
      fsp.stat(layout.objectPath(f.oid)).catch(() => null),
    ]);
    if (!a || !b || !a.isFile() || a.ino !== b.ino || a.dev !== b.dev || a.size !== f.size) return false;
  }
  return true;
}

export type BuildOutcome = 'built' | 'present' | 'repaired';

/**
 * Make `models/<model>/<version>` hold the given files. Every object must be
 * in the store already. A complete directory is left alone; a damaged one
 * (a file deleted or replaced by hand) is repaired file by file, each file
 * replaced atomically by a fresh link to its verified object.
 */
export async function buildVersion(
  layout: StoreLayout, model: string, version: string, files: readonly VersionFile[], barrier: Barrier = noBarrier,
): Promise<BuildOutcome> {
  const dest = layout.versionDir(model, version);
  const exists = await fsp.stat(dest).then((s) => s.isDirectory(), () => false);
  if (exists) {
    if (await versionIntact(layout, model, version, files)) return 'present';
    await repairVersion(layout, model, version, files, barrier);
    return 'repaired';
  }
  const build = tmpName(layout, `build-${model}-${version}`);
  try {
    await fsp.mkdir(build, { recursive: true });
    const dirs = new Set<string>([build]);
    for (const f of files) {
      const target = safeJoin(build, f.name);
      await fsp.mkdir(dirname(target), { recursive: true });
      for (let d = dirname(target); d.startsWith(build); d = dirname(d)) dirs.add(d);
      await fsp.link(layout.objectPath(f.oid), target);
    }
    // Deepest first, so each directory entry is durable before its parent's.
    for (const d of [...dirs].sort((x, y) => y.split(sep).length - x.split(sep).length)) await fsyncDir(d);
    await barrier(`build:${model}/${version}:linked`);
    await fsp.mkdir(layout.modelDir(model), { recursive: true });
    await fsyncDir(layout.modelsDir);
    await fsp.rename(build, dest);
    await fsyncDir(layout.modelDir(model));
    await barrier(`build:${model}/${version}:in-place`);
    return 'built';
  } catch (err) {
    await fsp.rm(build, { recursive: true, force: true }).catch(() => {});
    throw storeFsError(`cannot build ${model}/${version}`, err, { model, version });
  }
}

async function repairVersion(layout: StoreLayout, model: string, version: string, files: readonly VersionFile[], barrier: Barrier): Promise<void> {
  try {
    for (const f of files) {
      const target = layout.versionFile(model, version, f.name);
      const [a, b] = await Promise.all([fsp.lstat(target).catch(() => null), fsp.stat(layout.objectPath(f.oid))]);
      if (a && a.isFile() && a.ino === b.ino && a.dev === b.dev) continue;
      await mkdirDurable(dirname(target));
      const tmp = tmpName(layout, 'relink');
      await fsp.link(layout.objectPath(f.oid), tmp);
      await fsp.rename(tmp, target);
      await fsyncDir(dirname(target));
      await barrier(`repair:${model}/${version}/${f.name}`);
    }
  } catch (err) {
    throw storeFsError(`cannot repair ${model}/${version}`, err, { model, version });
  }
}

/** Point `models/<model>/<which>` at `version` atomically (new symlink, rename over, fsync the directory). */
export async function setLink(layout: StoreLayout, model: string, which: typeof CURRENT | typeof PREVIOUS, version: string): Promise<void> {
  layout.versionDir(model, version); // validates the name
  const tmp = tmpName(layout, `link-${which}`);
  try {
    await fsp.mkdir(layout.tmpDir, { recursive: true });
    await fsp.symlink(version, tmp);
    await fsp.rename(tmp, layout.link(model, which));
    await fsyncDir(layout.modelDir(model));
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw storeFsError(`cannot switch ${model}/${which} to ${version}`, err, { model, version });
  }
}

export async function removeLink(layout: StoreLayout, model: string, which: typeof CURRENT | typeof PREVIOUS): Promise<void> {
  await fsp.rm(layout.link(model, which), { force: true });
  await fsyncDir(layout.modelDir(model)).catch(() => {});
}

/**
 * Make `version` current; the version it replaces becomes `previous`.
 * `previous` moves first: a crash in between leaves current unchanged.
 */
export async function activate(layout: StoreLayout, model: string, version: string, barrier: Barrier = noBarrier): Promise<{ from?: string; previousBefore?: string }> {
  const from = await readLink(layout, model, CURRENT);
  const previousBefore = await readLink(layout, model, PREVIOUS);
  if (from === version) return { from, previousBefore };
  if (from !== undefined) {
    await setLink(layout, model, PREVIOUS, from);
    await barrier(`switch:${model}:previous`);
  }
  await setLink(layout, model, CURRENT, version);
  await barrier(`switch:${model}:current`);
  return { from, previousBefore };
}

/** Undo an activation: `current` back to `from`, `previous` back to what it was. */
export async function restore(layout: StoreLayout, model: string, from: string, previousBefore: string | undefined): Promise<void> {
  await setLink(layout, model, CURRENT, from);
  if (previousBefore !== undefined) await setLink(layout, model, PREVIOUS, previousBefore);
  else await removeLink(layout, model, PREVIOUS);
}

/** Remove a version directory: moved under tmp/ first (atomic), then deleted. */
export async function removeVersion(layout: StoreLayout, model: string, version: string): Promise<void> {
  await removeDir(layout, layout.versionDir(model, version));
}

/** Remove a whole model (its links and every version): moved under tmp/ in one rename, then deleted. */
export async function removeModel(layout: StoreLayout, model: string): Promise<void> {
  await removeDir(layout, layout.modelDir(model));
}

/** One rename under tmp/ (readers see the directory whole or gone), its parent synced, then the delete. */
async function removeDir(layout: StoreLayout, dir: string): Promise<void> {
  const trash = tmpName(layout, 'trash');
  await fsp.mkdir(layout.tmpDir, { recursive: true });
  await fsp.rename(dir, trash);
  await fsyncDir(dirname(dir));
  await fsp.rm(trash, { recursive: true, force: true });
}

/** Total size of the regular files below a directory (for gc reports). */
export async function dirFiles(dir: string): Promise<Array<{ path: string; ino: number; size: number }>> {
  const out: Array<{ path: string; ino: number; size: number }> = [];
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const name of await readdirOrEmpty(d)) {
      const p = join(d, name);
      const st = await fsp.lstat(p).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile()) out.push({ path: relative(dir, p), ino: st.ino, size: st.size });
    }
  }
  return out;
}
