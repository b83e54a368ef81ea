/**
 * Why a request to the hub (or a service) failed, in words an operator can
 * act on. Node's fetch says only "fetch failed" and keeps the reason
 * (ECONNREFUSED, ENOTFOUND, a TLS error) in `err.cause`; and some of its
 * messages repeat the whole URL, credentials included. Every error text the
 * agent stores or logs about a request goes through here.
 */
import { errorMessage } from '../errors.ts';
import { redactText } from '../util/redact.ts';

/** The reason fetch keeps in `err.cause`: its code (ECONNREFUSED…), else its message. */
export function fetchFailureReason(err: unknown): string | undefined {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : undefined;
}

export function requestErrorMessage(err: unknown): string {
  const message = errorMessage(err);
  const why = fetchFailureReason(err);
  let text: string;
  if (message === 'fetch failed') text = `cannot reach the server${why ? ` (${why})` : ''}`;
  else text = why && !message.includes(why) ? `${message} (${why})` : message;
  return redactText(text);
}
