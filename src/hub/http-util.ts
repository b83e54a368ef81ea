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

/**
 * Whether a Host header names this machine's loopback interface (or is
 * absent). A hub without tokens trusts loopback peers; a browser on the same
 * machine is one, and a page whose DNS name was rebound to 127.0.0.1 would
 * reach the hub as "same origin" under its own name. Refusing foreign Host
 * names closes that door.
 */
export function isLoopbackHost(host: string | undefined, also: readonly string[] = []): boolean {
  if (host === undefined || host === '') return true;
  const h = host.toLowerCase();
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']')) : h.replace(/:\d*$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) !== 0) return isLoopback(name);
  return also.includes(name);
}

/**
 * Whether a parsed JSON value nests deeper than `max` (walked without
 * recursion). Deeply nested documents parse fine but later blow the stack of
 * whatever serialises or walks them (JSON.stringify of the fleet view).
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push({ v: child, d: d + 1 });
  }
  return false;
}
