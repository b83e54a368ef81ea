import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { NotFoundError, UsageError } from '../errors.ts';
import { DEFAULT_RETENTION_KEEP } from '../registry/desired.ts';
import { formatBytes } from '../reconcile/format.ts';
import { StoreLayout, acquireLock, collectGarbage, pinMap, readState } from '../store/index.ts';
import { printJson, EXIT, type CommandContext } from './context.ts';

export interface GcCommandOptions {
  store?: string;
  keep?: string;
  dryRun?: boolean;
  json?: boolean;
}

export async function gcCommand(opts: GcCommandOptions, ctx: CommandContext): Promise<number> {
  if (!opts.store) throw new UsageError('gc needs --store <dir>');
  let keep: number | undefined;
  if (opts.keep !== undefined) {
    keep = Number(opts.keep);
    if (!Number.isInteger(keep) || keep < 0) throw new UsageError(`--keep must be a non-negative integer (got ${opts.keep})`);
  }
  const layout = new StoreLayout(resolve(ctx.cwd, opts.store));
  if (!existsSync(layout.modelsDir)) throw new NotFoundError(`${layout.root} is not a modelsync store (no models/)`, { store: layout.root });
  const { state } = await readState(layout);
  keep ??= state.retentionKeep ?? DEFAULT_RETENTION_KEEP;
  // Pinned versions stay whatever their age: a pin is a promise to keep it runnable.
  const protect = new Map<string, Set<string>>();
  for (const [m, v] of Object.entries(await pinMap(layout))) protect.set(m, new Set([v]));
  for (const [m, s] of Object.entries(state.models)) if (s.desired) protect.set(m, (protect.get(m) ?? new Set()).add(s.desired));

  const lock = opts.dryRun ? undefined : await acquireLock(layout.lockFile, 'gc');
  let report;
  try {
    report = await collectGarbage(layout, { keep, dryRun: opts.dryRun, protect });
  } finally {
    await lock?.release();
  }
  if (opts.json) {
    printJson(ctx, report);
    return EXIT.ok;
  }
  const verb = report.dryRun ? 'would remove' : 'removed';
  ctx.out(`keeping current, previous and ${keep} newest version${keep === 1 ? '' : 's'} per model`);
  for (const v of report.versionsRemoved) ctx.out(`  ${verb} ${v.model}/${v.version}`);
  ctx.out(`${verb} ${report.versionsRemoved.length} version${report.versionsRemoved.length === 1 ? '' : 's'} and ${report.objectsRemoved} object${report.objectsRemoved === 1 ? '' : 's'}; ${report.dryRun ? 'would free' : 'freed'} ${formatBytes(report.bytesFreed)}`);
  return EXIT.ok;
}
