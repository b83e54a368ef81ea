/**
 * The webhook receiver's checks. GitHub and Gitea sign the raw body with
 * HMAC-SHA256 and send `X-Hub-Signature-256: sha256=<hex>`. When a secret is
 * configured the signature is required; the body is only ever a hint (the
 * agent always fetches from Git), so nothing in it is trusted beyond logging.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type SignatureVerdict = 'ok' | 'missing' | 'malformed' | 'mismatch';

export const SIGNATURE_HEADER = 'x-hub-signature-256';
/** Push payloads of large repositories stay well below this; anything larger is refused. */
export const MAX_WEBHOOK_BODY = 1 << 20;

export function signBody(secret: string, body: Uint8Array | string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Constant-time check of a `sha256=<hex>` header against the body. */
export function verifySignature(secret: string, body: Uint8Array, header: string | string[] | undefined): SignatureVerdict {
  if (header === undefined || header === '') return 'missing';
  if (Array.isArray(header)) return 'malformed';
  const m = /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  if (!m) return 'malformed';
  const given = Buffer.from(m[1]!.toLowerCase(), 'hex');
  const expected = createHmac('sha256', secret).update(body).digest();
  // Both are 32 bytes here, so timingSafeEqual never throws and never leaks a length.
  return timingSafeEqual(given, expected) ? 'ok' : 'mismatch';
}

/** What the body says, for the log line only: repository, ref and head commit when present. */
export function webhookHint(body: Uint8Array, headers: Record<string, string | string[] | undefined>): string {
  const event = first(headers['x-github-event']) ?? first(headers['x-gitea-event']) ?? first(headers['x-gitlab-event']);
  let ref: string | undefined;
  let repo: string | undefined;
  try {
    const j = JSON.parse(Buffer.from(body).toString('utf8')) as { ref?: unknown; repository?: { full_name?: unknown } };
    if (typeof j.ref === 'string') ref = j.ref.slice(0, 200);
    if (typeof j.repository?.full_name === 'string') repo = j.repository.full_name.slice(0, 200);
  } catch {
    // Not JSON (or empty): fine, it is only a hint.
  }
  return [event, repo, ref].filter(Boolean).join(' ') || 'webhook';
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
