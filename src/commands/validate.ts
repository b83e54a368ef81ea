import { resolve } from 'node:path';
import { UsageError, formatProblem } from '../errors.ts';
import { loadRegistry } from '../registry/load.ts';
import { openSource, resolveRepoDir } from '../registry/open.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { checkSignatures, renderSignatures } from './verify-signatures.ts';

export interface ValidateOptions {
  repo?: string;
  rev?: string;
  staged?: boolean;
  json?: boolean;
  /** Check commit signatures as a verifying site would (`--allowed-signers`, `--gpg-keys`, `--base`). */
  verifySignatures?: boolean;
  allowedSigners?: string;
  gpgKeys?: string;
  base?: string;
}

export async function validateCommand(opts: ValidateOptions, ctx: CommandContext): Promise<number> {
  const repo = await resolveRepoDir(ctx.cwd, opts.repo);
  if (!opts.verifySignatures && (opts.allowedSigners || opts.gpgKeys || opts.base)) throw new UsageError('--allowed-signers, --gpg-keys and --base go with --verify-signatures');
  // In a pre-commit hook git names the index being committed (a temporary one for `git commit -a`).
  const indexFile = opts.staged && ctx.env.GIT_INDEX_FILE ? resolve(ctx.cwd, ctx.env.GIT_INDEX_FILE) : undefined;
  const source = await openSource(repo, { rev: opts.rev, staged: opts.staged, indexFile });
  const { registry, problems } = await loadRegistry(source);
  const signatures = opts.verifySignatures ? await checkSignatures(repo, opts, ctx.cwd) : undefined;
  const ok = problems.length === 0 && (signatures?.ok ?? true);
  if (opts.json) {
    printJson(ctx, {
      ok,
      source: source.description,
      commit: source.commit,
      models: registry.models.size,
      versions: [...registry.models.values()].reduce((n, m) => n + m.versions.size, 0),
      sites: registry.sites.size,
      problems,
      ...(signatures ? { signatures } : {}),
    });
    return ok ? EXIT.ok : EXIT.error;
  }
  if (signatures) ctx.out(renderSignatures(signatures));
  if (problems.length === 0) {
    const versions = [...registry.models.values()].reduce((n, m) => n + m.versions.size, 0);
    ctx.out(`${signatures && !signatures.ok ? 'valid' : 'ok'}: ${source.description} — ${count(registry.models.size, 'model')}, ${count(versions, 'version')}, ${count(registry.sites.size, 'site')}`);
  } else {
    ctx.out(problems.map(formatProblem).join('\n'));
    ctx.out(`${problems.length} problem${problems.length === 1 ? '' : 's'} in ${source.description}`);
  }
  return ok ? EXIT.ok : EXIT.error;
}

const count = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;
