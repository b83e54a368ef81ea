/**
 * Batch answers, asked for lazily and kept while they are fresh.
 *
 * The first transfer that needs an action asks the batch API for it together
 * with up to 99 other objects still waiting, so N objects cost ⌈N/100⌉ batch
 * requests however the transfers interleave. An action that expires before a
 * transfer gets to it (a slow link, a bandwidth cap, a long queue) is asked
 * for again instead of being sent to a server that would refuse it.
 */
import type { ModelsyncError } from '../errors.ts';
import type { LfsOperation } from './endpoint.ts';
import { type BatchContext, type BatchObjectResult, MAX_BATCH_OBJECTS, requestBatch } from './batch.ts';
import type { LfsObject } from './types.ts';

/** git-lfs's margin: an action expiring within this is treated as expired. */
export const EXPIRY_MARGIN_MS = 5_000;

type Entry = { actions: BatchObjectResult['actions']; error?: undefined } | { actions?: undefined; error: ModelsyncError };

export class ActionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<void>>();
  private readonly done = new Set<string>();
  /** Errors of a whole batch request, already retried there: not to be retried per object. */
  private readonly batchFailures = new WeakSet<object>();
  /**
   * The first failure of a whole batch request (already retried with backoff):
   * an unreachable server, refused credentials or a missing repository will not
   * answer the next batch either, so the objects still waiting fail at once.
   */
  private fatal: ModelsyncError | undefined;
  /** Batch requests made, for tests and logs. */
  requests = 0;

  constructor(
    private readonly ctx: BatchContext,
    private readonly operation: LfsOperation,
    private readonly order: readonly LfsObject[],
    private readonly now: () => number = Date.now,
  ) {}

  /** The actions for `obj` (empty for an upload the server already has); throws the object's typed error. */
  async get(obj: LfsObject): Promise<BatchObjectResult['actions']> {
    for (let round = 0; round < 4; round++) {
      const e = this.entries.get(obj.oid);
      if (e) {
        if (e.error) {
          // Hand the error out once; asking again later means a new batch.
          this.entries.delete(obj.oid);
          throw e.error;
        }
        // Straight from a batch we waited for: use it even if the server gave a short life.
        if (round > 0 || !this.expiringSoon(e.actions)) return e.actions;
        this.entries.delete(obj.oid);
      }
      const pending = this.pending.get(obj.oid);
      if (!pending && this.fatal) throw this.fatal;
      await (pending ?? this.startBatch(obj));
    }
    throw new Error(`no batch answer for ${obj.oid}`); // unreachable: every batch fills or fails its entries
  }

  /** Forget the actions of `obj` (its href was refused): the next get asks again. */
  invalidate(obj: LfsObject): void {
    this.entries.delete(obj.oid);
  }

  /** `obj` needs no more actions: leave it out of later batches. */
  finish(obj: LfsObject): void {
    this.done.add(obj.oid);
    this.entries.delete(obj.oid);
  }

  isBatchFailure(err: unknown): boolean {
    return typeof err === 'object' && err !== null && this.batchFailures.has(err);
  }

  private expiringSoon(actions: BatchObjectResult['actions']): boolean {
    const primary = this.operation === 'download' ? actions.download : actions.upload;
    return primary?.expiresAt !== undefined && primary.expiresAt - this.now() < EXPIRY_MARGIN_MS;
  }

  private startBatch(first: LfsObject): Promise<void> {
    const group: LfsObject[] = [first];
    for (const o of this.order) {
      if (group.length >= MAX_BATCH_OBJECTS) break;
      if (o.oid === first.oid || this.done.has(o.oid) || this.pending.has(o.oid)) continue;
      const e = this.entries.get(o.oid);
      if (e && (e.error || !this.expiringSoon(e.actions))) continue;
      group.push(o);
    }
    this.requests++;
    const p = requestBatch(this.ctx, this.operation, group).then(
      (results) => {
        for (const r of results) this.entries.set(r.obj.oid, r.error ? { error: r.error } : { actions: r.actions });
      },
      (err: ModelsyncError) => {
        this.batchFailures.add(err);
        this.fatal ??= err;
        for (const o of group) this.entries.set(o.oid, { error: err });
      },
    );
    const settled = p.finally(() => {
      for (const o of group) if (this.pending.get(o.oid) === settled) this.pending.delete(o.oid);
    });
    for (const o of group) this.pending.set(o.oid, settled);
    return settled;
  }
}
