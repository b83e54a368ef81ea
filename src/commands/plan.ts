/**
 * `modelsync plan`: what merging a change deploys where (see
 * fleet/preview.ts). Reads the two sides, then plans without I/O.
 */
import { UsageError } from '../errors.ts';
import { formatPlanMarkdown, formatPlanText } from '../fleet/plan-format.ts';
import { planChange } from '../fleet/preview.ts';
import { openSource, requireGitRepo, resolveRepoDir } from '../registry/open.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { defaultBranch, mergeBase, readChunkIndexes, readSide } from './preview-read.ts';

export interface PlanOptions {
  repo?: string;
  base?: string;
  head?: string;
  site?: string[];
  format?: string;
  /** Same as --format json (every command takes --json). */
  json?: boolean;
}

const FORMATS = ['text', 'markdown', 'json'] as const;

export async function planCommand(opts: PlanOptions, ctx: CommandContext): Promise<number> {
  const format = opts.json ? 'json' : (opts.format ?? 'text');
  if (!(FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, not ${JSON.stringify(format)}`);
  const repo = await resolveRepoDir(ctx.cwd, opts.repo);
  const loc = await requireGitRepo(repo, 'plan', { allowLinked: true });

  const headSource = await openSource(repo, opts.head ? { rev: opts.head } : {});
  let baseRev = opts.base;
  let baseLabel = opts.base;
  if (!baseRev) {
    const branch = await defaultBranch(loc);
    const tip = (await openSource(repo, { rev: branch })).commit!;
    const headCommit = headSource.commit ?? (await openSource(repo, { rev: 'HEAD' })).commit!;
    baseRev = await mergeBase(loc, tip, headCommit, `${branch} and ${opts.head ?? 'HEAD'}`);
    baseLabel = `merge base with ${branch}`;
  }
  const baseSource = await openSource(repo, { rev: baseRev });
  const base = await readSide(baseSource, `${baseLabel} ${baseSource.commit!.slice(0, 12)}`, { checkContent: false });
  // Content checks only for versions the change adds: what is already in base was checked when it merged, and
  // a working tree with smudged models would otherwise be hashed whole.
  const head = await readSide(headSource, headSource.commit ? `${opts.head ?? 'HEAD'} ${headSource.commit.slice(0, 12)}` : headSource.description, {
    checkContent: (model, version) => !base.registry.models.get(model)?.versions.has(version),
  });

  const known = new Set([...base.registry.sites.keys(), ...head.registry.sites.keys()]);
  const unknown = (opts.site ?? []).filter((s) => !known.has(s));
  if (unknown.length > 0) throw new UsageError(`no site ${unknown.map((s) => JSON.stringify(s)).join(', ')} in either ${base.label} or ${head.label}`);

  const chunks = await readChunkIndexes(loc.gitdir, [base.registry, head.registry]);
  const plan = planChange({
    base, head, problems: head.problems,
    sites: opts.site && opts.site.length > 0 ? [...new Set(opts.site)].sort() : undefined,
    chunks: (oid) => chunks.get(oid),
  });

  if (format === 'json') printJson(ctx, { ok: plan.problems.length === 0, changesNothing: plan.sites.length === 0, ...plan });
  else ctx.out(format === 'markdown' ? formatPlanMarkdown(plan) : formatPlanText(plan));
  return plan.problems.length > 0 ? EXIT.error : EXIT.ok;
}
