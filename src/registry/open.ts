import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { CommitSource, IndexSource, WorkTreeSource, findGitDir, type RegistrySource } from './source.ts';

export interface SourceChoice {
  rev?: string;
  staged?: boolean;
  /** With `staged`: read this index file instead of .git/index (GIT_INDEX_FILE in a hook). */
  indexFile?: string;
}

/** The source a registry command reads: working tree by default, or `--rev`, or `--staged`. */
export async function openSource(repoDir: string, choice: SourceChoice = {}): Promise<RegistrySource> {
  const dir = resolve(repoDir);
  if (choice.rev && choice.staged) throw new UsageError('give --rev or --staged, not both');
  if (choice.rev) return CommitSource.open(await findGitDir(dir), choice.rev);
  if (choice.staged) {
    const loc = await findGitDir(dir);
    if (!loc.dir) throw new UsageError(`--staged needs a checkout with a working tree; ${dir} is a bare repository`);
    return new IndexSource({ dir: loc.dir, gitdir: loc.gitdir }, choice.indexFile);
  }
  return new WorkTreeSource(dir);
}
