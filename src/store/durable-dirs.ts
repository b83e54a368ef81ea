/**
 * `mkdir -p` that survives a power cut: a directory's entry lives in its
 * parent, so every directory created here has its parent fsynced (deepest
 * first). Without it a fresh `objects/aa/` could vanish after a crash and
 * take a just-renamed object with it.
 */
import { promises as fsp } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fsyncDir } from '../util/fsutil.ts';

/** Create dir and its missing ancestors; returns the directories created, deepest first. */
export async function mkdirDurable(dir: string): Promise<string[]> {
  const target = resolve(dir);
  let first: string | undefined;
  try {
    first = await fsp.mkdir(target, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // Node's async recursive mkdir says ENOENT when the filesystem is out of inodes (the sync one
    // says ENOSPC): make each missing level ourselves, so the real cause (disk full) surfaces.
    first = await mkdirEachLevel(target);
  }
  if (first === undefined) return [];
  const created: string[] = [];
  for (let d = target; ; d = dirname(d)) {
    created.push(d);
    if (d === resolve(first) || d === dirname(d)) break;
  }
  for (const d of created) await fsyncDir(dirname(d));
  return created;
}

/** mkdir of every missing ancestor of `target` and itself, one level at a time; the first made, or undefined. */
async function mkdirEachLevel(target: string): Promise<string | undefined> {
  const missing: string[] = [];
  for (let d = target; d !== dirname(d); d = dirname(d)) {
    if (await fsp.stat(d).then(() => true, () => false)) break;
    missing.unshift(d);
  }
  for (const d of missing) {
    try {
      await fsp.mkdir(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return missing[0];
}
