/**
 * Small HTTP helpers shared by the hub's handlers: one error type that maps
 * to a status, bounded body reading, media-type checks.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';

/** A request the hub refuses; `status` is what the client sees, `code` is stable. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const JSON_TYPE = 'application/json';
export const LFS_TYPE = 'application/vnd.git-lfs+json';

export function sendJson(res: ServerResponse, status: number, body: unknown, contentType = JSON_TYPE, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...headers,
    'Content-Type': `${contentType}; charset=utf-8`,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = text.endsWith('\n') ? text : `${text}\n`;
  res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** The media type of the request body, lowercased, without parameters. */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

export function requireMediaType(req: IncomingMessage, allowed: readonly string[]): void {
  const t = mediaType(req);
  if (!allowed.includes(t)) {
    throw new HttpError(415, 'UnsupportedMediaType', `Content-Type must be ${allowed.join(' or ')}${t ? `, not ${t}` : ''}`);
  }
}

/**
 * Read a whole (small) request body, refusing it as soon as it passes `limit`
 * so an oversized body costs the hub at most `limit` bytes of memory.
 */
export async function readBoundedBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw new HttpError(413, 'PayloadTooLarge', `request body is larger than ${limit} bytes`, { Connection: 'close' });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > limit) throw new HttpError(413, 'PayloadTooLarge', `request body is larger than ${limit} bytes`, { Connection: 'close' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/** Parse a JSON body; a syntax error is the client's fault (400), never a crash. */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const body = await readBoundedBody(req, limit);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, 'MalformedJson', `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether a socket's peer address is this machine (127.0.0.0/8, ::1, or v4-mapped loopback). */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  if (isIP(a) === 4) return a.startsWith('127.');
  return a === '::1';
}
