/**
 * What every hub route sees of a request: its target exactly as sent, the
 * route it matched, and (once authorised) who is asking.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from './auth.ts';

/** How a route reports errors: LFS JSON, Git plain text, API JSON or plain text. */
export type Family = 'git' | 'lfs' | 'api' | 'plain';

export interface Route {
  name: string;
  family: Family;
  repo?: string;
  handle: (ctx: RequestContext) => Promise<void>;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: RequestTarget;
  route: Route;
  /** Set once authorised. */
  who?: Identity;
}

export const BASIC_CHALLENGE = 'Basic realm="modelsync"';

/**
 * The request target exactly as sent: no percent-decoding and no dot-segment
 * resolution (WHATWG URL parsing would turn `/x/../r.git` into `/r.git` and
 * `//host/p` into another host), so what we route on is what we validate.
 */
export interface RequestTarget {
  pathname: string;
  /** The raw query string, without "?". */
  search: string;
  searchParams: URLSearchParams;
}

export function parseTarget(raw: string | undefined): RequestTarget {
  const target = raw ?? '/';
  const q = target.indexOf('?');
  const pathname = q < 0 ? target : target.slice(0, q);
  const search = q < 0 ? '' : target.slice(q + 1);
  return { pathname: pathname.startsWith('/') ? pathname : `/${pathname}`, search, searchParams: new URLSearchParams(search) };
}
