/**
 * The HTTP transport of the LFS client.
 *
 * Why node:http/https and not fetch (undici): we need the status line before
 * the body (to choose between resume, restart and error), `Range` requests,
 * a body piped straight into a file with real backpressure (a paused
 * IncomingMessage stops reading the socket, so TCP slows the sender), an idle
 * timeout that also covers a body that stalls half-way, and control over
 * which headers follow a redirect to another host. node:http gives all of that
 * with Buffers and classic streams and no WHATWG stream adapters per chunk;
 * fetch's redirect handling would also decide on its own what to forward.
 * One keep-alive agent per protocol per client reuses connections across the
 * many small requests of a batch.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AuthError, ModelsyncError, NetworkError, NotFoundError } from '../errors.ts';
import { parseRetryAfter } from './retry.ts';
import { describeUrl } from './scrub.ts';

export const DEFAULT_TIMEOUT_MS = 30_000;

export interface TransportOptions {
  userAgent?: string;
  /** Idle time (no bytes either way) after which a request fails and is retried. */
  timeoutMs?: number;
  /** Sockets per host; should cover the transfer concurrency plus batch requests. */
  maxSockets?: number;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A small body sent at once, or a factory for a streamed one (called once per send). */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
  /**
   * For small exchanges (batch, verify): the whole answer, headers and body,
   * must arrive within this. The idle timeout alone would let a server that
   * trickles a byte at a time hold the pass for as long as it likes.
   */
  deadlineMs?: number;
  /**
   * For bodies of any size: the status line and headers must arrive within
   * this (the idle timeout alone never fires on a server trickling a byte at
   * a time); the body is then the caller's to watch.
   */
  headDeadlineMs?: number;
  /** On a new connection, closed after: not one from the keep-alive pool, which may be as dead as the one being checked. */
  fresh?: boolean;
}

export class HttpTransport {
  readonly userAgent: string;
  readonly timeoutMs: number;
  private readonly agents: { http: http.Agent; https: https.Agent };

  constructor(opts: TransportOptions = {}) {
    this.userAgent = opts.userAgent ?? 'modelsync-lfs/0.1';
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const common = { keepAlive: true, maxSockets: opts.maxSockets ?? 16, scheduling: 'lifo' as const };
    this.agents = { http: new http.Agent(common), https: new https.Agent(common) };
  }

  /**
   * Send a request and resolve with the response as soon as its status line
   * and headers arrive; the caller consumes (or destroys) the body.
   */
  send(url: string, opts: SendOptions = {}): Promise<IncomingMessage> {
    const method = opts.method ?? 'GET';
    const where = describeUrl(url);
    return new Promise<IncomingMessage>((resolve, reject) => {
      const u = httpUrl(url, where);
      if (u instanceof Error) {
        reject(u);
        return;
      }
      const mod = u.protocol === 'https:' ? https : http;
      const agent = opts.fresh ? false : u.protocol === 'https:' ? this.agents.https : this.agents.http;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...opts.headers };
      let response: IncomingMessage | undefined;
      let req: http.ClientRequest;
      try {
        req = mod.request(u, { method, headers, agent, signal: opts.signal });
      } catch (e) {
        // Node refuses bad header names or values synchronously: asking again cannot help.
        reject(protocolError(`cannot send ${method} ${where}: ${(e as Error).message}`, { url: where }));
        return;
      }
      req.setTimeout(this.timeoutMs, () => {
        const err = new NetworkError(`${method} ${where}: no data for ${Math.round(this.timeoutMs / 1000)}s`, { url: where, timeout: true });
        // After the headers the body is what stalls: fail the response stream with our error.
        if (response && !response.destroyed) response.destroy(err);
        req.destroy(err);
      });
      if (opts.deadlineMs !== undefined) {
        const deadline = setTimeout(() => {
          const err = new NetworkError(`${method} ${where}: no complete answer within ${Math.round(opts.deadlineMs! / 1000)}s`, { url: where, timeout: true });
          if (response && !response.destroyed) response.destroy(err);
          req.destroy(err);
        }, opts.deadlineMs);
        deadline.unref();
        req.once('close', () => {
          if (!response) clearTimeout(deadline);
        });
        req.once('response', (res) => res.once('close', () => clearTimeout(deadline)));
      }
      if (opts.headDeadlineMs !== undefined) {
        const headDeadline = setTimeout(() => {
          if (!response) req.destroy(new NetworkError(`${method} ${where}: no complete response head within ${Math.round(opts.headDeadlineMs! / 1000)}s`, { url: where, timeout: true }));
        }, opts.headDeadlineMs);
        headDeadline.unref();
        req.once('close', () => clearTimeout(headDeadline));
        req.once('response', () => clearTimeout(headDeadline));
      }
      req.on('error', (e) => reject(wrapNetworkError(e, method, where)));
      req.on('response', (res) => {
        response = res;
        resolve(res);
      });
      if (opts.body === undefined) req.end();
      else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
      else {
        // Errors on either side surface through req's 'error' (reject above) or the response.
        pipeline(opts.body(), req).catch((e: unknown) => req.destroy(e as Error));
      }
    });
  }

  /** Close idle keep-alive connections. */
  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

export function wrapNetworkError(e: unknown, method: string, where: string): ModelsyncError | Error {
  if (e instanceof ModelsyncError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError') return err;
  const what = err?.code ? `${err.code}${err.message && !err.message.includes(err.code) ? ` (${err.message})` : ''}` : err?.message ?? String(e);
  return new NetworkError(`${method} ${where} failed: ${what}`, { url: where, errno: err?.code }, e);
}

/** Read a whole (small) body, failing when it exceeds `limit` bytes. */
export async function readBody(res: IncomingMessage, limit: number, where: string): Promise<Buffer> {
  const declared = Number(res.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    res.destroy();
    throw new NetworkError(`response from ${where} is too large (${declared} bytes, limit ${limit})`, { url: where, status: res.statusCode });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res) {
      total += (chunk as Buffer).length;
      if (total > limit) {
        res.destroy();
        throw new NetworkError(`response from ${where} is too large (more than ${limit} bytes)`, { url: where, status: res.statusCode });
      }
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    throw wrapNetworkError(e, 'GET', where);
  }
  return Buffer.concat(chunks);
}

/**
 * Let go of a body we do not need (a redirect's, a 2xx to a PUT): read it
 * so the keep-alive connection can be reused, but drop the connection once
 * it passes `limit` bytes. A bare resume() would read an endless body for
 * as long as the server sends it: for ever, in an agent.
 */
export function discardBody(res: IncomingMessage, limit = 64 * 1024): void {
  let seen = 0;
  res.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > limit) res.destroy();
  });
  res.on('error', () => {});
  res.resume();
}

/** Read at most a few KiB of an error body, for a few seconds, for its message; then let the connection go. */
export async function errorBodyMessage(res: IncomingMessage, deadlineMs = 5_000): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  const giveUp = setTimeout(() => res.destroy(), deadlineMs);
  try {
    for await (const chunk of res) {
      chunks.push(chunk as Buffer);
      total += (chunk as Buffer).length;
      if (total > 16 * 1024) {
        res.destroy();
        break;
      }
    }
  } catch {
    // The message is a nicety; the status code is what counts.
  } finally {
    clearTimeout(giveUp);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let message = text;
  try {
    const json = JSON.parse(text) as { message?: unknown };
    if (typeof json?.message === 'string') message = json.message;
  } catch {
    // not JSON: use the text
  }
  // eslint-disable-next-line no-control-regex
  message = message.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

/** The typed error for a non-success HTTP status. */
export function statusError(status: number, what: string, where: string, serverMessage: string, headers: IncomingMessage['headers'] = {}): ModelsyncError {
  const suffix = serverMessage ? `: ${serverMessage}` : '';
  const data = { url: where, status };
  if (status === 401) return new AuthError(`${what} refused: ${where} needs credentials (401)${suffix}`, data);
  if (status === 403) return new AuthError(`${what} refused: access to ${where} denied (403)${suffix}`, data);
  if (status === 404 || status === 410) return new NotFoundError(`${what}: ${where} not found (${status})${suffix}`, data);
  const retryAfterMs = parseRetryAfter(headers['retry-after']);
  return new NetworkError(`${what}: ${where} answered ${status}${suffix}`, { ...data, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });
}

/** The server broke the LFS protocol (bad JSON, unknown transfer, unusable href): asking again will not help. */
export function protocolError(message: string, data: Record<string, unknown> = {}): ModelsyncError {
  return new ModelsyncError('ProtocolError', message, { data, retry: 'stalling' });
}

/** `href` as a URL, or the error a request to it fails with (not a URL, or not http(s)). */
export function httpUrl(href: string, where: string): URL | Error {
  let u: URL;
  try {
    u = new URL(href);
  } catch {
    return new NetworkError(`invalid URL ${where}`, { url: where });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return protocolError(`unsupported URL scheme ${u.protocol} in ${where}`, { url: where });
  return u;
}
