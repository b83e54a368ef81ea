import { existsSync } from 'node:fs';
import { UsageError } from '../errors.ts';
import { DEFAULT_RETENTION_KEEP } from '../registry/desired.ts';
import { formatBytes } from '../reconcile/format.ts';
import { StoreLayout, acquireLock, collectGarbage, listModels, pinMap, readState, writeState } from '../store/index.ts';
import { printJson, EXIT, type CommandContext } from './context.ts';
import { requireStore } from './given-paths.ts';

export interface GcCommandOptions {
  store?: string;
  keep?: string;
  dryRun?: boolean;
  /** Also remove whole models the site no longer selects (current included). */
  unmanaged?: boolean;
  json?: boolean;
}

export async function gcCommand(opts: GcCommandOptions, ctx: CommandContext): Promise<number> {
  if (!opts.store) throw new UsageError('gc needs --store <dir>');
  let keep: number | undefined;
  if (opts.keep !== undefined) {
    keep = Number(opts.keep);
    if (!Number.isInteger(keep) || keep < 0) throw new UsageError(`--keep must be a non-negative integer (got ${opts.keep})`);
  }
  const layout = new StoreLayout(requireStore(ctx, opts.store));
  if (!existsSync(layout.modelsDir)) throw new UsageError(`--store ${opts.store} is not a modelsync store (no models/ in it)`, { store: layout.root });
  // Lock first, then read: what a pass records meanwhile must not be judged from a stale copy.
  const lock = opts.dryRun ? undefined : await acquireLock(layout.lockFile, 'gc');
  let report;
  let kept: string[] = [];
  try {
    const { state } = await readState(layout);
    keep ??= state.retentionKeep ?? DEFAULT_RETENTION_KEEP;
    // Pinned versions stay whatever their age: a pin is a promise to keep it runnable.
    const pins = await pinMap(layout);
    const protect = new Map<string, Set<string>>();
    for (const [m, v] of Object.entries(pins)) protect.set(m, new Set([v]));
    for (const [m, s] of Object.entries(state.models)) if (s.desired) protect.set(m, (protect.get(m) ?? new Set()).add(s.desired));
    let removeModels: string[] = [];
    if (opts.unmanaged) {
      if (!state.selected) throw new UsageError(`no pass has recorded what this site selects yet (${layout.stateFile}); run a pass before gc --unmanaged`);
      const unmanaged = (await listModels(layout)).filter((m) => !state.selected!.includes(m));
      kept = unmanaged.filter((m) => pins[m] !== undefined);
      removeModels = unmanaged.filter((m) => pins[m] === undefined);
    }
    report = await collectGarbage(layout, { keep, dryRun: opts.dryRun, protect, removeModels });
    if (!report.dryRun && report.modelsRemoved.length > 0) {
      for (const m of report.modelsRemoved) delete state.models[m];
      await writeState(layout, state);
    }
  } finally {
    await lock?.release();
  }
  if (opts.json) {
    printJson(ctx, { ...report, keptPinned: kept });
    return EXIT.ok;
  }
  const verb = report.dryRun ? 'would remove' : 'removed';
  ctx.out(`keeping current, previous and ${report.keep} newest version${report.keep === 1 ? '' : 's'} per model`);
  for (const m of report.modelsRemoved) ctx.out(`  ${verb} ${m} (no longer selected by the site), current included`);
  for (const m of kept) ctx.out(`  kept ${m}: no longer selected, but pinned on this site (modelsync unpin ${m} to let gc remove it)`);
  for (const v of report.versionsRemoved) ctx.out(`  ${verb} ${v.model}/${v.version}`);
  ctx.out(`${verb} ${report.modelsRemoved.length ? `${report.modelsRemoved.length} model${report.modelsRemoved.length === 1 ? '' : 's'}, ` : ''}${report.versionsRemoved.length} version${report.versionsRemoved.length === 1 ? '' : 's'} and ${report.objectsRemoved} object${report.objectsRemoved === 1 ? '' : 's'}; ${report.dryRun ? 'would free' : 'freed'} ${formatBytes(report.bytesFreed)}`);
  return EXIT.ok;
}
