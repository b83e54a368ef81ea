/** What a pass returns to the CLI and the agent, and how it maps to an exit code (DESIGN.md). */
import { ModelsyncError, errorMessage } from '../errors.ts';
import { storeFsError } from '../store/objects.ts';
import type { Action, PlanReason } from './plan.ts';
import type { DesiredReason } from '../registry/desired.ts';

export type PassStatus = 'in-sync' | 'changed' | 'conflict' | 'degraded' | 'failed';

export type ModelOutcomeKind =
  | 'unchanged'   // nothing to do
  | 'activated'   // current switched (or repaired) to the desired version
  | 'planned'     // dry run: what would happen
  | 'conflict'    // left alone
  | 'waiting'     // fetched and verified, switched when the site's maintenance window opens
  | 'degraded'    // switched, failed its health check, switched back (or skipped: failed before at this commit)
  | 'failed';     // an error stopped this model; its current is untouched

export interface PassError {
  code: string;
  message: string;
  retry: string;
  model?: string;
  data?: Record<string, unknown>;
}

export interface ModelOutcome {
  model: string;
  action: Action;
  reason: PlanReason;
  detail: string;
  outcome: ModelOutcomeKind;
  desired: string;
  declared: string;
  desiredReason: DesiredReason;
  /** Active before the pass. */
  from?: string;
  /** Active after the pass. */
  active?: string;
  /** Bytes of this version the site did not hold (to fetch, before any chunk-delta saving). */
  bytes: number;
  /**
   * Bytes this pass actually transferred for this model (chunk deltas and resumed
   * downloads make it smaller than `bytes`; an object shared with another model
   * counts for the first). Set on models the pass fetched or activated, when known.
   */
  bytesFetched?: number;
  /**
   * This pass switched nothing for the model: it restarted and health-checked
   * the services of a version an earlier pass switched to (a plain `reconcile`,
   * which restarts no service, or an agent pass stopped before its verdict).
   */
  owedVerdict?: { since: string; by: 'reconcile' | 'interrupted-pass'; from?: string };
  drift?: string;
  error?: PassError;
}

export interface ReconcileResult {
  status: PassStatus;
  exitCode: number;
  dryRun: boolean;
  site: string;
  /** Registry URL without credentials, or its path. */
  registry: string;
  commit?: string;
  models: ModelOutcome[];
  /** Models switched to their desired version (a dry run: the switches it would make). */
  changed: Array<{ model: string; from?: string; to: string }>;
  /** Versions this pass switched to, found unhealthy and switched back (agent passes with services). */
  rolledBack: Array<{ model: string; failed: string; restored: string }>;
  conflicts: Array<{ model: string; active?: string; declared: string; detail: string }>;
  degraded: Array<{ model: string; version: string; reason: string }>;
  /**
   * Models in the store that the site no longer selects: kept as they are
   * (current untouched; a service may still read them), no longer managed.
   */
  unmanaged: Array<{ model: string; active?: string }>;
  bytesFetched: number;
  /** 429/503 answers (LFS batch API or storage) waited out and retried this pass; absent when none. */
  throttled?: number;
  /** When this pass reached the registry (state.json's lastFetchAt; staleness counts from here). */
  registryReachedAt?: string;
  /** Dry run: bytes the pass would fetch. */
  bytesPlanned: number;
  durationMs: number;
  errors: PassError[];
  warnings: string[];
  startedAt: string;
  /** Milliseconds per step (lock, fetch-registry, validate, …). */
  stepMs: Record<string, number>;
  /** Whether the desired state was read from the registry or reused from the last validated pass at the same commit. */
  desiredFrom?: 'registry' | 'snapshot';
  /** Switches are held outside the maintenance window; the next one opens then (ISO 8601). */
  waitUntil?: string;
}

export const EXIT_CODES = { ok: 0, error: 1, conflicts: 3, degraded: 4 } as const;

export function statusOf(r: Pick<ReconcileResult, 'errors' | 'degraded' | 'conflicts' | 'changed'>): PassStatus {
  if (r.errors.length > 0) return 'failed';
  if (r.degraded.length > 0) return 'degraded';
  if (r.conflicts.length > 0) return 'conflict';
  if (r.changed.length > 0) return 'changed';
  return 'in-sync';
}

export function exitCodeOf(status: PassStatus): number {
  switch (status) {
    case 'failed':
      return EXIT_CODES.error;
    case 'degraded':
      return EXIT_CODES.degraded;
    case 'conflict':
      return EXIT_CODES.conflicts;
    default:
      return EXIT_CODES.ok;
  }
}

/** Every error leaving a pass is a ModelsyncError with a stable code. */
export function asModelsyncError(err: unknown): ModelsyncError {
  if (err instanceof ModelsyncError) return err;
  if ((err as NodeJS.ErrnoException | undefined)?.code && typeof (err as NodeJS.ErrnoException).syscall === 'string') return storeFsError('store operation failed', err);
  return new ModelsyncError('InternalError', errorMessage(err), { cause: err });
}

export function passError(err: unknown, model?: string): PassError {
  const e = asModelsyncError(err);
  const out: PassError = { code: e.code, message: e.message, retry: e.retry };
  if (model) out.model = model;
  if (Object.keys(e.data).length > 0) out.data = e.data;
  return out;
}
