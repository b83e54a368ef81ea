/**
 * state.json: what the agent applied, from which commit, and a short history
 * of passes. Written atomically (temp file, fsync, rename, fsync dir), so a
 * crash leaves the old state or the new one, never half of either.
 */
import { promises as fsp } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from '../util/fsutil.ts';
import { storeFsError } from './objects.ts';
import type { StoreLayout } from './layout.ts';

export const HISTORY_LIMIT = 50;

const ModelState = z.object({
  /** The registry's current_version at the last pass. */
  declared: z.string().optional(),
  /** What this site should run after overrides and pins. */
  desired: z.string().optional(),
  reason: z.enum(['current', 'override', 'pin']).optional(),
  /** `current` after the last pass. */
  active: z.string().optional(),
  /** The version the agent last applied from the registry (not from a pin, not by hand): the base of the conflict rule. */
  lastApplied: z.string().optional(),
  lastAppliedAt: z.string().optional(),
  lastAppliedCommit: z.string().optional(),
  conflict: z.object({ active: z.string(), declared: z.string(), since: z.string() }).optional(),
  /** Set while the site no longer selects the model: kept as it is, no longer managed (gc --unmanaged removes it). */
  unmanagedSince: z.string().optional(),
});
export type ModelState = z.infer<typeof ModelState>;

const DegradedEntry = z.object({
  model: z.string(),
  version: z.string(),
  /** The registry commit at which it failed: not retried until the commit changes. */
  commit: z.string(),
  since: z.string(),
  reason: z.string(),
});
export type DegradedEntry = z.infer<typeof DegradedEntry>;

/**
 * A switch whose health verdict is owed: written before services restart,
 * cleared once they are judged. A pass that dies in between (SIGTERM, a
 * crash) leaves it, and the next pass with services restarts and checks them
 * again (rolling back to `from` on failure) instead of calling it in sync.
 * A pass without services (`modelsync reconcile`) leaves one for every switch
 * it made (`by: reconcile`): the agent restarts and checks them once.
 */
const VerifyingEntry = z.object({
  model: z.string(),
  version: z.string(),
  from: z.string().optional(),
  previousBefore: z.string().optional(),
  commit: z.string(),
  since: z.string(),
  /** Who switched: an agent pass that stopped before its verdict (absent), or `reconcile`, which has no services. */
  by: z.enum(['reconcile']).optional(),
});
export type VerifyingEntry = z.infer<typeof VerifyingEntry>;

const PassRecord = z.object({
  at: z.string(),
  commit: z.string().optional(),
  status: z.enum(['in-sync', 'changed', 'conflict', 'degraded', 'failed']),
  changed: z.array(z.object({ model: z.string(), from: z.string().optional(), to: z.string() })),
  bytesFetched: z.number(),
  durationMs: z.number(),
  conflicts: z.array(z.string()),
  errors: z.array(z.object({ code: z.string(), message: z.string(), model: z.string().optional() })),
});
export type PassRecord = z.infer<typeof PassRecord>;

export const StoreStateSchema = z.object({
  format: z.literal(1),
  site: z.string().optional(),
  /** Registry URL (credentials stripped) or path. */
  registry: z.string().optional(),
  branch: z.string().optional(),
  /** The commit whose desired state the store fully reflects. */
  appliedCommit: z.string().optional(),
  appliedAt: z.string().optional(),
  /** The commit the last pass worked on, successful or not. */
  attemptedCommit: z.string().optional(),
  attemptedAt: z.string().optional(),
  /** Last time the registry was reached; staleness is measured from here. */
  lastFetchAt: z.string().optional(),
  /** The site's retention.keep at the last pass: what `gc` keeps by default. */
  retentionKeep: z.number().int().nonnegative().optional(),
  models: z.record(z.string(), ModelState),
  /** The models the site selected at the last pass that got as far as planning; any other model in the store is unmanaged. */
  selected: z.array(z.string()).optional(),
  /**
   * The desired state computed at the last validated commit (opaque to the
   * store): a pass at the same commit, site and pins reuses it instead of
   * reading every manifest again.
   */
  snapshot: z
    .object({
      commit: z.string(),
      site: z.string(),
      pins: z.record(z.string(), z.string()),
      resolvedSite: z.record(z.string(), z.unknown()),
      desired: z.array(z.record(z.string(), z.unknown())),
    })
    .optional()
    .catch(undefined),
  pins: z.record(z.string(), z.string()),
  degraded: z.array(DegradedEntry),
  verifying: z.array(VerifyingEntry).default([]),
  history: z.array(PassRecord),
});
export type StoreState = z.infer<typeof StoreStateSchema>;

export function emptyState(): StoreState {
  return { format: 1, models: {}, pins: {}, degraded: [], verifying: [], history: [] };
}

export interface LoadedState {
  state: StoreState;
  /** Set when state.json existed but could not be used (it was moved aside). */
  warning?: string;
}

/** Read state.json; a missing file is an empty state. An unreadable one is moved aside, not fatal. */
export async function readState(layout: StoreLayout, opts: { moveAsideCorrupt?: boolean } = {}): Promise<LoadedState> {
  let text: string;
  try {
    text = await fsp.readFile(layout.stateFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: emptyState() };
    throw storeFsError(`cannot read ${layout.stateFile}`, err);
  }
  let why: string;
  try {
    const parsed = StoreStateSchema.safeParse(JSON.parse(text));
    if (parsed.success) return { state: parsed.data };
    why = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).slice(0, 3).join('; ');
  } catch (err) {
    why = (err as Error).message;
  }
  let warning = `${layout.stateFile} is unusable (${why}); starting from an empty state`;
  if (opts.moveAsideCorrupt) {
    const aside = `${layout.stateFile}.corrupt-${Date.now()}`;
    await fsp.rename(layout.stateFile, aside).catch(() => {});
    warning += `; the old file was moved to ${aside}`;
  }
  return { state: emptyState(), warning };
}

export async function writeState(layout: StoreLayout, state: StoreState): Promise<void> {
  const trimmed: StoreState = { ...state, history: state.history.slice(-HISTORY_LIMIT) };
  try {
    await writeFileAtomic(layout.stateFile, `${JSON.stringify(trimmed, null, 2)}\n`);
  } catch (err) {
    throw storeFsError(`cannot write ${layout.stateFile}`, err);
  }
}
