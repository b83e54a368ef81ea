/**
 * Uploads for `modelsync publish --push`: batch "upload", skip what the server
 * already has (no upload action), PUT each file as a streamed body with its
 * Content-Length, then POST the `verify` action when there is one. Retries,
 * the bandwidth cap and the same-origin rule for our Authorization header
 * are the download side's.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { ChecksumError, ModelsyncError, NotFoundError, StoreError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { SHA256_RE } from '../util/hash.ts';
import { ActionCache } from './actions.ts';
import { LFS_MEDIA_TYPE, type LfsAction, smallAnswerDeadline } from './batch.ts';
import { isHrefRefused } from './download.ts';
import { endpointFromUrl, type LfsEndpoint } from './endpoint.ts';
import { hrefHeaders } from './href.ts';
import { discardBody, errorBodyMessage, type HttpTransport, statusError } from './http.ts';
import { runPool } from './pool.ts';
import { isAbort, type RetryPolicy, withRetries } from './retry.ts';
import { describeUrl, logMessage, scrubError, toModelsyncError } from './scrub.ts';
import type { TokenBucket } from './throttle.ts';
import { type TransferOptions, transferSetup } from './transfer.ts';
import type { FetchProgress, LfsObject } from './types.ts';

export interface UploadObject extends LfsObject {
  /** The file holding the object's bytes. */
  path: string;
}

export interface UploadOptions extends TransferOptions {
  /** A discovered endpoint (discoverEndpoint with operation "upload"), or an LFS base URL (`…/info/lfs`). */
  endpoint: LfsEndpoint | string;
  /** Credentials for a string endpoint (an LfsEndpoint carries its own). */
  auth?: { token?: string; username?: string };
  objects: readonly UploadObject[];
  signal?: AbortSignal;
  onProgress?(p: FetchProgress): void;
}

export interface UploadResult {
  /** Objects sent (and verified when the server asked for it). */
  uploaded: LfsObject[];
  /** Objects the server already had. */
  skipped: LfsObject[];
  bytesTransferred: number;
}

/** Upload every object or throw the first failure (a typed error whose data lists all failures). */
export async function uploadObjects(opts: UploadOptions): Promise<UploadResult> {
  const endpoint = typeof opts.endpoint === 'string' ? endpointFromUrl(opts.endpoint, opts.auth) : opts.endpoint;
  const secrets = endpoint.secrets();
  const { concurrency, transport, retry, bucket, logger } = transferSetup(opts);
  const result: UploadResult = { uploaded: [], skipped: [], bytesTransferred: 0 };
  const failed: Array<{ obj: LfsObject; error: ModelsyncError }> = [];

  const objects = dedupe(opts.objects);
  // Refuse before any network traffic if a file does not match what we are about to announce.
  for (const obj of objects) await checkLocalFile(obj);

  const actions = new ActionCache({ endpoint, transport, retry, logger, signal: opts.signal }, 'upload', objects);
  const put: PutContext = { transport, endpoint, bucket, signal: opts.signal, onProgress: opts.onProgress, counters: { bytes: 0 } };
  try {
    await runPool(
      objects,
      concurrency,
      async (obj) => {
        try {
          const sent = await uploadOne(obj, actions, put, retry, logger);
          (sent ? result.uploaded : result.skipped).push({ oid: obj.oid, size: obj.size });
        } catch (err) {
          if (opts.signal?.aborted || isAbort(err)) throw err;
          failed.push({ obj: { oid: obj.oid, size: obj.size }, error: toModelsyncError(err, secrets) });
        } finally {
          actions.finish(obj);
        }
      },
      opts.signal,
    );
  } catch (err) {
    throw opts.signal?.aborted ? opts.signal.reason : err;
  } finally {
    transport.close();
  }
  result.bytesTransferred = put.counters.bytes;
  if (failed.length > 0) throw scrubError(uploadFailure(failed, objects.length - result.skipped.length, result.skipped.length, endpoint, actions), secrets);
  return result;
}

/**
 * One error for a failed upload. A failed batch request (refused credentials,
 * a server that is down) is reported as itself, once: every object waiting on
 * it "failing" is a consequence, not N problems. Otherwise the count is of
 * uploads attempted; objects the server already had were never at risk.
 */
function uploadFailure(
  failed: Array<{ obj: LfsObject; error: ModelsyncError }>,
  needed: number,
  skipped: number,
  endpoint: LfsEndpoint,
  actions: ActionCache,
): ModelsyncError {
  const list = failed.map((f) => ({ oid: f.obj.oid, code: f.error.code, message: f.error.message }));
  const batch = failed.find((f) => actions.isBatchFailure(f.error));
  if (batch) {
    const err = batch.error;
    if (failed.length < needed) err.message += ` (${failed.length} of ${needed} LFS objects not uploaded)`;
    err.data.failed = list;
    return err;
  }
  const first = failed[0]!.error;
  const already = skipped ? `; ${skipped} already on the server` : '';
  first.message = `${failed.length} of ${needed} LFS upload${needed === 1 ? '' : 's'} to ${endpoint.description} failed${already}; first: ${first.message}`;
  first.data.failed = list;
  return first;
}

interface PutContext {
  transport: HttpTransport;
  endpoint: LfsEndpoint;
  bucket?: TokenBucket;
  signal?: AbortSignal;
  onProgress?(p: FetchProgress): void;
  counters: { bytes: number };
}

/** true when sent, false when the server already had it. */
async function uploadOne(obj: UploadObject, actions: ActionCache, ctx: PutContext, retry: RetryPolicy, logger: Logger): Promise<boolean> {
  let rebatched = false;
  for (;;) {
    const a = await actions.get(obj);
    if (!a.upload) return false;
    try {
      await withRetries(() => putOnce(obj, a.upload!, ctx), retry, {
        signal: ctx.signal,
        onRetry: (err, attempt, ms) => logger.warn({ oid: obj.oid, attempt: attempt + 1, delayMs: ms, err: logMessage(err, ctx.endpoint.secrets()) }, 'LFS upload failed; retrying'),
      });
    } catch (err) {
      if (isHrefRefused(err) && !rebatched) {
        rebatched = true;
        actions.invalidate(obj);
        continue;
      }
      throw err;
    }
    if (a.verify) {
      const verify = a.verify;
      await withRetries(() => verifyOnce(obj, verify, ctx), retry, { signal: ctx.signal });
    }
    return true;
  }
}

function headersFor(action: LfsAction, ctx: PutContext): Record<string, string> {
  return hrefHeaders(action.header, action.href, { endpointOrigin: ctx.endpoint.origin, authorization: ctx.endpoint.authorization() });
}

async function putOnce(obj: UploadObject, action: LfsAction, ctx: PutContext): Promise<void> {
  const where = describeUrl(action.href);
  let sent = 0;
  const body = () =>
    createReadStream(obj.path, { highWaterMark: 1 << 20 }).pipe(
      new Transform({
        transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
          sent += chunk.length;
          ctx.counters.bytes += chunk.length;
          ctx.onProgress?.({ oid: obj.oid, bytes: sent, size: obj.size });
          if (ctx.bucket) ctx.bucket.take(chunk.length, ctx.signal).then(() => cb(null, chunk), cb);
          else cb(null, chunk);
        },
      }),
    );
  const headers = { ...headersFor(action, ctx), 'content-type': 'application/octet-stream', 'content-length': String(obj.size) };
  const res = await ctx.transport.send(action.href, { method: 'PUT', headers, body, signal: ctx.signal });
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) {
    discardBody(res);
    return;
  }
  const msg = await errorBodyMessage(res);
  const err = statusError(status, `upload of ${obj.oid.slice(0, 12)}`, where, msg, res.headers);
  if ((status === 401 || status === 403) && new URL(action.href).origin !== ctx.endpoint.origin) err.data.hrefRefused = true;
  throw err;
}

async function verifyOnce(obj: LfsObject, action: LfsAction, ctx: PutContext): Promise<void> {
  const where = describeUrl(action.href);
  const body = Buffer.from(JSON.stringify({ oid: obj.oid, size: obj.size }));
  const headers = {
    ...headersFor(action, ctx),
    accept: LFS_MEDIA_TYPE,
    'content-type': LFS_MEDIA_TYPE,
    'content-length': String(body.length),
  };
  const res = await ctx.transport.send(action.href, { method: 'POST', headers, body, signal: ctx.signal, deadlineMs: smallAnswerDeadline(ctx.transport) });
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) {
    discardBody(res);
    return;
  }
  const msg = await errorBodyMessage(res);
  throw statusError(status, `verify of ${obj.oid.slice(0, 12)}`, where, msg, res.headers);
}

async function checkLocalFile(obj: UploadObject): Promise<void> {
  if (!SHA256_RE.test(obj.oid)) throw new ModelsyncError('InvalidObject', `not a sha256 oid: ${JSON.stringify(String(obj.oid).slice(0, 80))}`, { retry: 'stalling' });
  let size: number;
  try {
    size = (await fsp.stat(obj.path)).size;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new NotFoundError(`cannot upload ${obj.oid}: ${obj.path} does not exist`, { file: obj.path, oid: obj.oid });
    throw new StoreError(`cannot read ${obj.path} for upload: ${e.message}`, { file: obj.path, oid: obj.oid }, err);
  }
  if (size !== obj.size) {
    throw new ChecksumError(`${obj.path} is ${size} bytes, but object ${obj.oid} should be ${obj.size}`, { oid: obj.oid, file: obj.path, expectedSize: obj.size, actualSize: size });
  }
}

function dedupe(objects: readonly UploadObject[]): UploadObject[] {
  const seen = new Set<string>();
  return objects.filter((o) => !seen.has(o.oid) && seen.add(o.oid));
}
