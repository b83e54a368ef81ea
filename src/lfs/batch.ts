/**
 * The Git LFS batch API (docs/api/batch.md): one POST to
 * `<endpoint>/objects/batch` asks where up to 100 objects can be downloaded
 * (or uploaded); the answer carries per-object actions or per-object errors.
 * The response is untrusted input: its size is bounded, its shape checked,
 * its hrefs and headers validated before we ever send a byte to them.
 */
import { z } from 'zod';
import type { Logger } from '../log.ts';
import { AuthError, type ModelsyncError, NetworkError, NotFoundError } from '../errors.ts';
import type { LfsEndpoint, LfsOperation } from './endpoint.ts';
import { checkActionHeaders } from './href.ts';
import { errorBodyMessage, type HttpTransport, protocolError, readBody, statusError, wrapNetworkError } from './http.ts';
import { isThrottle, type RetryPolicy, withRetries } from './retry.ts';
import { logMessage } from './scrub.ts';
import type { LfsObject } from './types.ts';

export const LFS_MEDIA_TYPE = 'application/vnd.git-lfs+json';
/** The spec's recommended maximum objects per batch request. */
export const MAX_BATCH_OBJECTS = 100;
/** 100 objects with long presigned hrefs and headers fit in well under this. */
export const MAX_BATCH_RESPONSE_BYTES = 4 * 1024 * 1024;

export interface LfsAction {
  href: string;
  header: Record<string, string>;
  /** Epoch milliseconds after which the href must not be used, if the server said. */
  expiresAt?: number;
}

export interface BatchObjectResult {
  obj: LfsObject;
  /** `download`; or `upload` and optional `verify`. Absent for an upload the server already has. */
  actions: Partial<Record<'download' | 'upload' | 'verify', LfsAction>>;
  error?: ModelsyncError;
}

const Action = z.object({
  href: z.string().max(16 * 1024),
  header: z.record(z.string(), z.string()).optional(),
  expires_in: z.number().optional(),
  expires_at: z.string().optional(),
});

const BatchResponse = z.object({
  transfer: z.string().optional(),
  hash_algo: z.string().optional(),
  objects: z
    .array(
      z.object({
        oid: z.string(),
        size: z.number().optional(),
        authenticated: z.boolean().optional(),
        actions: z.record(z.string(), Action).optional(),
        error: z.object({ code: z.number(), message: z.string().optional() }).optional(),
      }),
    )
    .max(10_000),
});

export interface BatchContext {
  endpoint: LfsEndpoint;
  transport: HttpTransport;
  retry: RetryPolicy;
  logger: Logger;
  signal?: AbortSignal;
  deadline?: number;
  /** Counts 429/503 answers that were waited out. */
  stats?: { throttled: number };
}

/** One batch request (retried on network errors, 5xx and 429), results in the order asked. */
export async function requestBatch(ctx: BatchContext, operation: LfsOperation, objects: readonly LfsObject[]): Promise<BatchObjectResult[]> {
  if (objects.length === 0) return [];
  if (objects.length > MAX_BATCH_OBJECTS) throw new RangeError(`at most ${MAX_BATCH_OBJECTS} objects per batch`);
  const where = ctx.endpoint.resolve('objects/batch');
  const body = Buffer.from(
    JSON.stringify({
      operation,
      transfers: ['basic'],
      objects: objects.map((o) => ({ oid: o.oid, size: o.size })),
      hash_algo: 'sha256',
    }),
  );
  const headers: Record<string, string> = {
    accept: LFS_MEDIA_TYPE,
    'content-type': LFS_MEDIA_TYPE,
    'content-length': String(body.length),
  };
  const auth = ctx.endpoint.authorization();
  if (auth) headers.authorization = auth;

  const json = await withRetries(
    async () => {
      const res = await ctx.transport.send(where, { method: 'POST', headers, body, signal: ctx.signal, deadlineMs: smallAnswerDeadline(ctx.transport) });
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        const msg = await errorBodyMessage(res);
        const err = statusError(status, `LFS batch ${operation}`, ctx.endpoint.description + '/objects/batch', msg, res.headers);
        if (err instanceof AuthError && !auth) {
          err.message += ctx.endpoint.withheld ? ` (${ctx.endpoint.withheld})` : ' (no token configured: pass --token-file or MODELSYNC_TOKEN)';
        }
        throw err;
      }
      const raw = await readBody(res, MAX_BATCH_RESPONSE_BYTES, ctx.endpoint.description);
      try {
        return JSON.parse(raw.toString('utf8')) as unknown;
      } catch (e) {
        throw protocolError(`LFS batch response from ${ctx.endpoint.description} is not JSON`, { url: ctx.endpoint.description });
      }
    },
    ctx.retry,
    {
      signal: ctx.signal,
      deadline: ctx.deadline,
      onRetry: (err, attempt, ms) => {
        if (ctx.stats && isThrottle(err)) ctx.stats.throttled++;
        ctx.logger.warn({ endpoint: ctx.endpoint.description, attempt: attempt + 1, delayMs: ms, err: logMessage(err, ctx.endpoint.secrets()) }, 'LFS batch request failed; retrying');
      },
    },
  ).catch((e: unknown) => {
    throw wrapNetworkError(e, 'POST', ctx.endpoint.description);
  });

  const parsed = BatchResponse.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw protocolError(`LFS batch response from ${ctx.endpoint.description} is malformed at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? ''}`, {
      url: ctx.endpoint.description,
    });
  }
  if (parsed.data.transfer !== undefined && parsed.data.transfer !== 'basic') {
    throw protocolError(`LFS server ${ctx.endpoint.description} chose transfer "${parsed.data.transfer}"; only "basic" is supported`);
  }
  if (parsed.data.hash_algo !== undefined && parsed.data.hash_algo !== 'sha256') {
    throw protocolError(`LFS server ${ctx.endpoint.description} uses hash algorithm "${parsed.data.hash_algo}"; only sha256 is supported`);
  }

  const byOid = new Map(parsed.data.objects.map((o) => [o.oid, o]));
  const now = Date.now();
  return objects.map((obj): BatchObjectResult => {
    const got = byOid.get(obj.oid);
    const label = `object ${obj.oid.slice(0, 12)}`;
    if (!got) return { obj, actions: {}, error: protocolError(`LFS server ${ctx.endpoint.description} did not answer for ${label}`, { oid: obj.oid }) };
    if (got.error) return { obj, actions: {}, error: objectError(got.error.code, got.error.message ?? '', obj, ctx.endpoint.description) };
    const actions: BatchObjectResult['actions'] = {};
    for (const name of ['download', 'upload', 'verify'] as const) {
      const a = got.actions?.[name];
      if (!a) continue;
      const checked = checkAction(a);
      if ('problem' in checked) return { obj, actions: {}, error: protocolError(`LFS server ${ctx.endpoint.description} gave an unusable ${name} action for ${label}: ${checked.problem}`, { oid: obj.oid }) };
      actions[name] = { href: a.href, header: checked.headers, expiresAt: expiry(a, now) };
    }
    if (operation === 'download' && !actions.download) {
      return { obj, actions, error: new NotFoundError(`LFS server ${ctx.endpoint.description} offers no download for ${label}`, { oid: obj.oid }) };
    }
    return { obj, actions };
  });
}

/** Per-object error codes (docs/api/batch.md "Response Errors") as typed errors. */
function objectError(code: number, serverMessage: string, obj: LfsObject, where: string): ModelsyncError {
  // eslint-disable-next-line no-control-regex
  const clean = serverMessage.replace(/[\u0000-\u001f\u007f]+/g, ' ').slice(0, 200);
  const msg = `object ${obj.oid.slice(0, 12)} (${obj.size} bytes) on ${where}: ${clean || `error ${code}`}`;
  const data = { oid: obj.oid, size: obj.size, status: code, url: where };
  if (code === 404) return new NotFoundError(`${msg} (not found)`, data);
  if (code === 410) return new NotFoundError(`${msg} (removed from the server)`, data);
  if (code === 401 || code === 403) return new AuthError(`${msg} (access denied)`, data);
  if (code === 422) return new NetworkError(`${msg} (refused as invalid)`, data);
  return new NetworkError(msg, data);
}

/** A batch or verify answer is small: it must arrive whole within this (twice the idle timeout). */
export function smallAnswerDeadline(transport: HttpTransport): number {
  return 2 * transport.timeoutMs;
}

function checkAction(a: z.infer<typeof Action>): { headers: Record<string, string> } | { problem: string } {
  let u: URL;
  try {
    u = new URL(a.href);
  } catch {
    return { problem: 'href is not a URL' };
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return { problem: `href scheme ${u.protocol} is not http(s)` };
  return checkActionHeaders(a.header ?? {});
}

/** `expires_in` (seconds from now) is preferred over `expires_at` (RFC 3339), as the spec says. */
function expiry(a: z.infer<typeof Action>, now: number): number | undefined {
  if (a.expires_in !== undefined && Number.isFinite(a.expires_in) && a.expires_in !== 0) return now + a.expires_in * 1000;
  if (a.expires_at) {
    const t = Date.parse(a.expires_at);
    // Go's zero time (0001-01-01) means "no expiry" in some servers.
    if (!Number.isNaN(t) && t > Date.UTC(1971, 0, 1)) return t;
  }
  return undefined;
}
