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
  const first = await fsp.mkdir(target, { recursive: true });
  if (first === undefined) return [];
  const created: string[] = [];
  for (let d = target; ; d = dirname(d)) {
    created.push(d);
    if (d === resolve(first) || d === dirname(d)) break;
  }
  for (const d of created) await fsyncDir(dirname(d));
  return created;
}
