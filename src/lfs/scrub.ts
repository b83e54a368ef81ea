/**
 * Last line of defence against leaking credentials: every error the LFS client
 * hands out passes through here. Messages are built from redacted URLs in the
 * first place; this catches what a server echoed back or a cause carried.
 */
import { ModelsyncError, NetworkError } from '../errors.ts';
import { redactUrl } from '../util/redact.ts';

export function scrubText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

function scrubValue(v: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof v === 'string') return scrubText(v, secrets);
  if (depth > 4 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, secrets, depth + 1));
  if (v instanceof Error) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = scrubValue(x, secrets, depth + 1);
  return out;
}

/** Scrub a ModelsyncError in place (message, data, stack); drop a cause that mentions a secret. */
export function scrubError<E extends ModelsyncError>(err: E, secrets: readonly string[]): E {
  if (secrets.length === 0) return err;
  err.message = scrubText(err.message, secrets);
  if (err.stack) err.stack = scrubText(err.stack, secrets);
  const data = scrubValue(err.data, secrets) as Record<string, unknown>;
  for (const k of Object.keys(err.data)) delete err.data[k];
  Object.assign(err.data, data);
  const cause = (err as { cause?: unknown }).cause;
  if (cause !== undefined) {
    const text = cause instanceof Error ? `${cause.message}\n${cause.stack ?? ''}` : String(cause);
    if (secrets.some((s) => s && text.includes(s))) Object.defineProperty(err, 'cause', { value: undefined, configurable: true, writable: true });
  }
  return err;
}

/** An error's message fit for a log line: servers echo things back, a token among them. */
export function logMessage(err: unknown, secrets: readonly string[]): string {
  return scrubText(err instanceof Error ? err.message : String(err), secrets);
}

/** Turn anything thrown into a ModelsyncError fit for a caller, without secrets. */
export function toModelsyncError(err: unknown, secrets: readonly string[], url?: string): ModelsyncError {
  if (err instanceof ModelsyncError) return scrubError(err, secrets);
  const e = err as NodeJS.ErrnoException;
  const message = scrubText(e instanceof Error ? e.message : String(err), secrets);
  return scrubError(new NetworkError(message, { url: url === undefined ? undefined : describeUrl(url), errno: e?.code }), secrets);
}

/**
 * A URL as it may appear in a message: credentials removed and, since hrefs
 * are often presigned (`?X-Amz-Signature=…`), no query string at all.
 */
export function describeUrl(url: string): string {
  try {
    const u = new URL(redactUrl(url));
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return redactUrl(url).replace(/\?.*$/, '');
  }
}
