/**
 * What we send along with an href from a batch response. The server chooses
 * the href and its headers, so both are untrusted: header names and values
 * must be sendable, headers that frame the message or steer the connection
 * are dropped (we decide those), and our own Authorization goes only to the
 * endpoint's origin and only when the action brought none of its own.
 */
import { protocolError } from './http.ts';
import { describeUrl } from './scrub.ts';

/** Headers an action may not set: message framing, the connection, and what we set ourselves. */
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'upgrade',
  'te',
  'trailer',
  'expect',
  // We ask for ranges ourselves, and hash the bytes exactly as sent (no content coding).
  'range',
  'if-range',
  'accept-encoding',
]);

/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What node will put on the wire (and no CR/LF, so nothing can be injected). */
// eslint-disable-next-line no-control-regex
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The headers of an action as we will send them, or the reason they are
 * unusable. Reserved headers are dropped rather than refused: some servers
 * add `Transfer-Encoding: chunked` to upload actions, and we set framing ourselves.
 */
export function checkActionHeaders(header: Readonly<Record<string, string>>): { headers: Record<string, string> } | { problem: string } {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (!HEADER_NAME.test(name)) return { problem: `invalid header name ${JSON.stringify(name.slice(0, 40))}` };
    if (!HEADER_VALUE.test(value)) return { problem: `invalid value for header ${name}` };
    if (RESERVED.has(name.toLowerCase())) continue;
    headers[name] = value;
  }
  return { headers };
}

/** Where our own credentials may go. */
export interface AuthScope {
  /** Origin of the LFS endpoint. */
  endpointOrigin: string;
  /** Our Authorization header value, if we have one. */
  authorization?: string;
}

/** The headers for a request to `url` on behalf of an action carrying `own` headers. */
export function hrefHeaders(own: Readonly<Record<string, string>>, url: string, scope: AuthScope): Record<string, string> {
  const headers: Record<string, string> = { ...own };
  const hasOwnAuth = Object.keys(headers).some((k) => k.toLowerCase() === 'authorization');
  if (!hasOwnAuth && scope.authorization && new URL(url).origin === scope.endpointOrigin) headers.authorization = scope.authorization;
  return headers;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function isRedirect(status: number): boolean {
  return REDIRECTS.has(status);
}

/**
 * The next hop of a redirect from `url` (hop `hop` of the chain that began at
 * `first`): it must name a Location, stay within MAX_REDIRECTS and stay on
 * http(s); leaving the origin drops the action's headers, which may carry a
 * credential.
 */
export function redirectHop(url: string, status: number, location: string | undefined, hop: number, first: string, headers: Record<string, string>): { url: string; headers: Record<string, string> } {
  if (!location) throw protocolError(`${describeUrl(url)} redirected (${status}) without a Location`);
  if (hop >= MAX_REDIRECTS) throw protocolError(`too many redirects from ${describeUrl(first)}`);
  const next = new URL(location, url);
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw protocolError(`${describeUrl(url)} redirected to a ${next.protocol} URL`);
  return { url: next.toString(), headers: next.origin !== new URL(url).origin ? {} : headers };
}
