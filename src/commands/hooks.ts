import * as fs from 'node:fs';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { UsageError } from '../errors.ts';
import { HOOKS_DIR } from '../registry/layout.ts';
import { configureCheckout } from '../registry/init.ts';
import { requireGitRepo, resolveRepoDir } from '../registry/open.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface HooksInstallOptions {
  repo?: string;
  json?: boolean;
}

/** `hooks install`: point core.hooksPath at the repository's own hooks/ (kept in Git, reviewed like code). */
export async function hooksInstallCommand(opts: HooksInstallOptions, ctx: CommandContext): Promise<number> {
  const loc = await requireGitRepo(await resolveRepoDir(ctx.cwd, opts.repo), 'hooks install', { allowLinked: true });
  if (!loc.dir) throw new UsageError(`${loc.gitdir} is a bare repository; hooks run in a checkout (install them there)`, { gitdir: loc.gitdir });
  const dir = loc.dir;
  const hooksDir = join(dir, HOOKS_DIR);
  if (!fs.existsSync(join(hooksDir, 'pre-commit'))) {
    throw new UsageError(`${hooksDir}/pre-commit does not exist: ${dir} has no modelsync hooks (is it a registry? modelsync init creates them)`, { dir });
  }
  // What init sets (hooksPath, modelsync.bin, the LFS filter), so the next commit in a fresh clone works.
  const { bin } = await configureCheckout(loc, { env: ctx.env });
  // The branch sites follow, as a fresh clone knows it (origin/HEAD); else the hooks' own fallback applies.
  const branch = await defaultBranchOfClone(loc.gitdir);
  if (branch && (await git.getConfig({ fs, gitdir: loc.gitdir, path: 'modelsync.branch' })) === undefined) {
    await git.setConfig({ fs, gitdir: loc.gitdir, path: 'modelsync.branch', value: branch });
  }
  const missingExec = ['pre-commit', 'post-commit', 'pre-push', 'post-checkout', 'post-merge'].filter((h) => {
    try {
      return (fs.statSync(join(hooksDir, h)).mode & 0o111) === 0;
    } catch {
      return false;
    }
  });
  // A hook without its executable bit is silently ignored by git; fix what a checkout may have lost.
  for (const h of missingExec) fs.chmodSync(join(hooksDir, h), 0o755);
  if (opts.json) printJson(ctx, { ok: true, hooksPath: HOOKS_DIR, bin: bin ?? null, branch: branch ?? null, madeExecutable: missingExec });
  else ctx.out(`core.hooksPath = ${HOOKS_DIR} in ${dir}${bin ? `; modelsync.bin = ${bin}` : ''}${missingExec.length ? ` (made executable: ${missingExec.join(', ')})` : ''}`);
  return EXIT.ok;
}

/** The branch origin/HEAD names in a clone (`ref: refs/remotes/origin/main` -> `main`), or undefined. */
async function defaultBranchOfClone(gitdir: string): Promise<string | undefined> {
  // git clone writes it as a loose symbolic ref; read it as git does, without following it.
  const text = await fs.promises.readFile(join(gitdir, 'refs/remotes/origin/HEAD'), 'utf8').catch(() => '');
  const m = /^ref: refs\/remotes\/origin\/(\S+)\s*$/.exec(text);
  return m?.[1];
}
