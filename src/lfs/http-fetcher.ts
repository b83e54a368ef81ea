/**
 * The ObjectFetcher that speaks the Git LFS batch API over HTTP(S): lazy
 * batches of up to 100 objects, a bounded pool of concurrent transfers,
 * retries with backoff around each transfer, a shared bandwidth cap.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ChecksumError, ModelsyncError, StoreError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { SHA256_RE } from '../util/hash.ts';
import { ActionCache } from './actions.ts';
import { type ChunkIndex, MAX_CHUNK_INDEX_BYTES, parseChunkIndex } from './cdc.ts';
import { DELTA_MIN_OBJECT_BYTES, deltaWorthIt, executeDelta, indexLocalFiles, type LocalChunk, planDelta, plannedBytes } from './delta.ts';
import { type AttemptContext, downloadAttempt, EMPTY_SHA256, inspectPart, isHrefRefused, removePart } from './download.ts';
import type { LfsEndpoint } from './endpoint.ts';
import type { HttpTransport } from './http.ts';
import { runPool } from './pool.ts';
import { beyondDeadline, isAbort, isRetryable, isThrottle, retryDelay, type RetryPolicy, sleep, withRetries } from './retry.ts';
import { logMessage, scrubError, toModelsyncError } from './scrub.ts';
import { type RangeStreams, readTrailer, TRAILER_BYTES } from './ranges.ts';
import { fetchSmallObject } from './small-body.ts';
import type { TokenBucket } from './throttle.ts';
import { type TransferOptions, transferSetup } from './transfer.ts';
import type { DeltaHints, FetchOptions, FetchResult, LfsObject, ObjectFetcher } from './types.ts';

/** However often a transfer makes progress and drops, give up after this many attempts. */
const MAX_ATTEMPTS_WITH_PROGRESS = 50;

export interface HttpFetcherOptions extends TransferOptions {
  endpoint: LfsEndpoint;
  /** Objects smaller than this are always fetched whole, even with delta hints (default 4 MiB). */
  deltaMinBytes?: number;
}

export class HttpFetcher implements ObjectFetcher {
  readonly description: string;
  readonly endpoint: LfsEndpoint;
  private readonly transport: HttpTransport;
  private readonly concurrency: number;
  private readonly bucket: TokenBucket | undefined;
  private readonly retry: RetryPolicy;
  private readonly logger: Logger;
  private readonly deltaMinBytes: number;
  private readonly rangeStreams: RangeStreams;
  private readonly wireMinBytes: number | undefined;
  /** Batch requests made by the last fetch (for tests and logs). */
  lastBatchRequests = 0;

  constructor(opts: HttpFetcherOptions) {
    this.endpoint = opts.endpoint;
    this.description = opts.endpoint.description;
    ({
      concurrency: this.concurrency,
      bucket: this.bucket,
      retry: this.retry,
      logger: this.logger,
      transport: this.transport,
      rangeStreams: this.rangeStreams,
      wireMinBytes: this.wireMinBytes,
    } = transferSetup(opts));
    this.deltaMinBytes = opts.deltaMinBytes ?? DELTA_MIN_OBJECT_BYTES;
  }

  async fetch(objects: readonly LfsObject[], options: FetchOptions): Promise<FetchResult> {
    const secrets = this.endpoint.secrets();
    const result: FetchResult = { fetched: [], bytesTransferred: 0, bytesByOid: {}, failed: [] };
    const todo: LfsObject[] = [];
    const seen = new Set<string>();
    for (const obj of objects) {
      if (seen.has(obj.oid)) continue;
      seen.add(obj.oid);
      const problem = invalidObject(obj);
      if (problem) result.failed.push({ obj, error: problem });
      else todo.push(obj);
    }
    if (todo.length === 0) return result;
    try {
      await fsp.mkdir(options.tmpDir, { recursive: true });
    } catch (err) {
      throw new StoreError(`cannot create ${options.tmpDir}: ${(err as Error).message}`, { dir: options.tmpDir }, err);
    }

    const stats = { throttled: 0 };
    const actions = new ActionCache(
      { endpoint: this.endpoint, transport: this.transport, retry: this.retry, logger: this.logger, signal: options.signal, deadline: options.deadline, stats },
      'download',
      todo,
    );
    const attemptCtx: Omit<AttemptContext, 'counters'> = {
      transport: this.transport,
      endpointOrigin: this.endpoint.origin,
      authorization: this.endpoint.authorization(),
      bucket: this.bucket,
      signal: options.signal,
      onProgress: options.onProgress,
      // One per fetch: a server that refuses a range once gets single streams for the rest of it.
      ranges: { mode: this.rangeStreams, refused: false },
      wireMinBytes: this.wireMinBytes,
      durable: options.durable,
    };

    try {
      await runPool(
        todo,
        this.concurrency,
        async (obj) => {
          const part = join(options.tmpDir, `${obj.oid}.part`);
          // Each object counts its own bytes (the caller reports them per model); the total is their sum.
          const own = { networkBytes: 0 };
          try {
            await this.fetchOne(obj, part, actions, { ...attemptCtx, counters: own, stalls: { killed: 0 } }, options, stats);
          } catch (err) {
            if (options.signal?.aborted || isAbort(err)) throw err;
            const error = toModelsyncError(err, secrets);
            this.logger.warn({ oid: obj.oid, code: error.code, err: error.message }, 'LFS object not fetched');
            result.failed.push({ obj, error });
            return;
          } finally {
            actions.finish(obj);
            result.bytesTransferred += own.networkBytes;
            result.bytesByOid![obj.oid] = own.networkBytes;
          }
          try {
            await options.onVerified(obj, part);
            result.fetched.push(obj);
          } catch (err) {
            if (options.signal?.aborted || isAbort(err)) throw err;
            const error = err instanceof ModelsyncError ? err : new StoreError(`storing ${obj.oid} failed: ${(err as Error).message}`, { oid: obj.oid }, err);
            result.failed.push({ obj, error });
          }
        },
        options.signal,
      );
    } catch (err) {
      // Aborted: partial files stay for the next pass to resume.
      throw options.signal?.aborted ? options.signal.reason : err instanceof ModelsyncError ? scrubError(err, secrets) : err;
    } finally {
      this.lastBatchRequests = actions.requests;
      result.throttled = stats.throttled;
    }
    return result;
  }

  /** Download one object to `part` with retries; resolves once it is verified there. */
  private async fetchOne(obj: LfsObject, part: string, actions: ActionCache, ctx: AttemptContext, options: FetchOptions, stats: { throttled: number }): Promise<void> {
    if (obj.size === 0) {
      // Nothing to transfer; the empty object still gets its file.
      await fsp.writeFile(part, '');
      return;
    }
    // A complete, valid .part from an earlier pass needs no batch request at all.
    // (A .part left by parallel ranges keeps its segments for downloadAttempt to resume.)
    if ((await inspectPart(obj, part, { keepSegments: ctx.ranges !== undefined && ctx.ranges.mode !== 'off' })).kind === 'complete') return;
    const hints = options.delta && obj.size >= this.deltaMinBytes ? options.delta : undefined;
    const tried = hints ? await this.tryDelta(obj, part, actions, ctx, options, hints) : { done: false };
    if (tried.done) return;
    // The object's chunk index comes along (fetched meanwhile, about 0.1 % of the object), so the next
    // upgrade of this file finds its chunks without reading it.
    const index = hints?.keepIndex ? (tried.indexBytes ? Promise.resolve(tried.indexBytes) : this.fetchIndex(obj, actions, ctx, options).catch(() => undefined)) : undefined;
    let whole = false;
    try {
      await this.downloadWhole(obj, part, actions, ctx, options, stats);
      whole = true;
    } finally {
      const bytes = await index;
      if (whole && bytes) await this.keepIndex(hints!, obj, bytes);
    }
  }

  /** Download one whole object to `part` with retries (resuming what is there); resolves once it is verified there. */
  private async downloadWhole(obj: LfsObject, part: string, actions: ActionCache, ctx: AttemptContext, options: FetchOptions, stats: { throttled: number }): Promise<void> {
    let failures = 0;
    let attempts = 0;
    let rebatched = false;
    let restartedAfterChecksum = false;
    for (;;) {
      ctx.signal?.throwIfAborted();
      attempts++;
      const before = await partProgress(part, obj.size);
      try {
        const a = await actions.get(obj);
        await downloadAttempt(ctx, obj, a.download!, part);
        return;
      } catch (err) {
        if (ctx.signal?.aborted || isAbort(err)) throw err;
        if (actions.isBatchFailure(err)) throw err;
        if (err instanceof ModelsyncError && err.data.rangesRefused === true && ctx.ranges && !ctx.ranges.refused) {
          // The server will not serve ranges: one stream from the contiguous prefix, at once.
          ctx.ranges.refused = true;
          this.logger.info({ oid: obj.oid, err: logMessage(err, this.endpoint.secrets()) }, 'range requests refused; downloading in one stream');
          continue;
        }
        if (isHrefRefused(err) && !rebatched) {
          // Presigned URLs expire on the storage side too: ask the batch API for a new one, once.
          rebatched = true;
          actions.invalidate(obj);
          this.logger.info({ oid: obj.oid }, 'download href refused; asking the LFS server for a new one');
          continue;
        }
        if (err instanceof ChecksumError && before > 0 && !restartedAfterChecksum) {
          // The resumed prefix may be what was wrong (a crash mid-write): one fresh try from zero.
          restartedAfterChecksum = true;
          this.logger.warn({ oid: obj.oid }, 'checksum mismatch after resume; downloading again from zero');
          continue;
        }
        if (!isRetryable(err)) throw err;
        // A transfer that moved forward earns its retries back: long downloads on flaky links finish.
        if ((await partProgress(part, obj.size)) > before) failures = 0;
        if (failures >= this.retry.retries || attempts >= MAX_ATTEMPTS_WITH_PROGRESS) throw err;
        const wait = retryDelay(err, failures, this.retry);
        // A Retry-After past the pass deadline: fail now (the .part stays) rather than sleep into it.
        if (beyondDeadline(wait, options.deadline)) throw err;
        if (isThrottle(err)) stats.throttled++;
        failures++;
        this.logger.warn({ oid: obj.oid, attempt: attempts, delayMs: wait, err: logMessage(err, this.endpoint.secrets()) }, 'LFS download failed; retrying');
        await sleep(wait, ctx.signal);
      }
    }
  }

  /**
   * A chunk-delta download (delta.ts); done when `part` now holds the verified
   * object. Any failure is logged and answered not done: the caller downloads
   * the object normally, resuming from whatever valid prefix the attempt left
   * (and keeps the index bytes fetched here, if any).
   */
  private async tryDelta(obj: LfsObject, part: string, actions: ActionCache, ctx: AttemptContext, options: FetchOptions, hints: DeltaHints): Promise<{ done: boolean; indexBytes?: Buffer }> {
    if (!usableIndex(hints, obj)) return { done: false };
    const log = this.logger.child({ oid: obj.oid });
    let indexBytes: Buffer | undefined;
    try {
      const candidates = [...(await hints.localCandidates(obj))];
      if (candidates.length === 0) return { done: false };
      indexBytes = await this.fetchIndex(obj, actions, ctx, options);
      const index = parseChunkIndex(indexBytes, obj);
      const local = new Map<string, LocalChunk>();
      const unindexed: string[] = [];
      for (const path of candidates) {
        if (!(await addKeptChunks(hints, path, index, local))) unindexed.push(path);
      }
      // Candidates without a kept index are read and cut to find their chunks.
      await indexLocalFiles(unindexed, index, ctx.signal, local);
      const state = await inspectPart(obj, part);
      if (state.kind === 'complete') return { done: true };
      const plan = planDelta(index, local, state.bytes);
      const sizes = plannedBytes(plan);
      // Not worth the extra requests when little can be reused.
      if (!deltaWorthIt(sizes.local, obj.size - state.bytes)) {
        log.debug({ reusable: sizes.local }, 'chunk delta: too little to reuse; downloading whole');
        return { done: false, indexBytes };
      }
      const action = (await actions.get(obj)).download!;
      const { reused } = await executeDelta(ctx, obj, action, part, plan, state.bytes, state.hash);
      log.info({ reused, fetched: obj.size - state.bytes - reused, requests: sizes.requests, keptIndexes: candidates.length - unindexed.length }, 'chunk delta: object assembled from local chunks and ranges');
      await this.keepIndex(hints, obj, indexBytes, index);
      return { done: true };
    } catch (err) {
      if (ctx.signal?.aborted || isAbort(err)) throw err;
      // A wrong result is discarded whole; anything else leaves a valid prefix to resume.
      if (err instanceof ChecksumError) await removePart(part);
      log.warn({ err: logMessage(err, this.endpoint.secrets()) }, 'chunk delta failed; downloading the object normally');
      return { done: false, indexBytes };
    }
  }

  /** The chunk index object of `obj`, downloaded (compressed when the server will) and verified into memory: it is at most MAX_CHUNK_INDEX_BYTES. */
  private async fetchIndex(obj: LfsObject, actions: ActionCache, ctx: AttemptContext, options: FetchOptions): Promise<Buffer> {
    const indexObj = usableIndex(options.delta!, obj);
    if (!indexObj) throw new Error(`no usable chunk index for ${obj.oid}`);
    try {
      return await withRetries(async () => fetchSmallObject(ctx, indexObj, (await actions.get(indexObj)).download!), this.retry, { signal: ctx.signal, deadline: options.deadline });
    } finally {
      actions.finish(indexObj);
    }
  }

  /** Keep the index of an object just verified, when it parses as that object's (`parsed`: it already did); a failure only costs the next upgrade a read of the file. */
  private async keepIndex(hints: DeltaHints, obj: LfsObject, bytes: Buffer, parsed?: ChunkIndex): Promise<void> {
    if (!hints.keepIndex) return;
    try {
      if (!parsed) parseChunkIndex(bytes, obj);
      await hints.keepIndex(obj, bytes);
    } catch (err) {
      this.logger.debug({ oid: obj.oid, err: (err as Error).message }, 'chunk index not kept');
    }
  }

  /** Close idle keep-alive connections (the process exits without it too: idle sockets are unref'd). */
  close(): void {
    this.transport.close();
  }
}

function invalidObject(obj: LfsObject): ModelsyncError | null {
  if (!SHA256_RE.test(obj.oid)) return new ModelsyncError('InvalidObject', `not a sha256 oid: ${JSON.stringify(String(obj.oid).slice(0, 80))}`, { retry: 'stalling', data: { oid: obj.oid } });
  if (!Number.isSafeInteger(obj.size) || obj.size < 0) return new ModelsyncError('InvalidObject', `invalid size ${obj.size} for ${obj.oid}`, { retry: 'stalling', data: { oid: obj.oid } });
  if (obj.size === 0 && obj.oid !== EMPTY_SHA256) return new ChecksumError(`object ${obj.oid} has size 0 but is not the empty object`, { oid: obj.oid, expectedSize: 0 });
  return null;
}

/** The chunk index object the registry names for `obj`, if it is one the client will fetch. */
function usableIndex(hints: DeltaHints, obj: LfsObject): LfsObject | undefined {
  const indexObj = hints.chunkIndex(obj);
  return indexObj && SHA256_RE.test(indexObj.oid) && indexObj.size <= MAX_CHUNK_INDEX_BYTES ? indexObj : undefined;
}

/**
 * The chunks of `path` as the site's kept index of it lists them, added to
 * `local` (first location wins); false when there is no usable kept index (or
 * it was cut with other parameters, so few chunks would match by name).
 */
async function addKeptChunks(hints: DeltaHints, path: string, index: ChunkIndex, local: Map<string, LocalChunk>): Promise<boolean> {
  const kept = await hints.keptIndex?.(path).catch(() => undefined);
  if (!kept) return false;
  let old: ChunkIndex;
  try {
    old = parseChunkIndex(kept.bytes, kept.file);
  } catch {
    return false;
  }
  const p = old.params;
  if (p.min !== index.params.min || p.avg !== index.params.avg || p.max !== index.params.max) return false;
  for (const c of old.chunks) if (!local.has(c.sha256)) local.set(c.sha256, { path, offset: c.offset });
  return true;
}

/** Bytes of the object on disk in `part`: its size, or what a parallel-range trailer says is real. */
async function partProgress(part: string, size: number): Promise<number> {
  let have: number;
  try {
    have = (await fsp.stat(part)).size;
  } catch {
    return 0;
  }
  if (have !== size + TRAILER_BYTES) return have;
  const segs = readTrailer(part, size);
  return segs ? segs[0]!.start + segs.reduce((n, s) => n + (s.pos - s.start), 0) : 0;
}
