/**
 * The HTTP client isomorphic-git uses to talk to the registry. Like the one
 * isomorphic-git ships, but every network read is bounded: a server that
 * accepts the connection and then goes quiet fails the pass after
 * `idleTimeoutMs` instead of holding the store lock forever. No keep-alive
 * agent, so a one-shot CLI exits as soon as the pass is done.
 *
 * Redirects are followed (a hub behind a proxy, a renamed repository), but the
 * Authorization header isomorphic-git adds stays with the registry's origin:
 * a redirect to another host gets no credentials, as with git's own client.
 */
import http from 'node:http';
import https from 'node:https';
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { ensureAdvertisedHead } from './ref-advertisement.ts';

const MAX_REDIRECTS = 5;
/** A ref advertisement is read whole (to add a missing HEAD); a registry's is a few KiB. */
const MAX_ADVERTISEMENT_BYTES = 32 << 20;

export class GitTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(url: string, ms: number) {
    super(`no data from ${new URL(url).origin} for ${ms / 1000} s`);
  }
}

async function collect(body: AsyncIterableIterator<Uint8Array> | undefined): Promise<Buffer | undefined> {
  if (!body) return undefined;
  const parts: Uint8Array[] = [];
  // upload-pack requests are wants and haves: small.
  for await (const p of body) parts.push(p);
  return Buffer.concat(parts);
}

export interface BoundedClientOptions {
  /**
   * Query parameters to add to every request to `origin` (a host that takes
   * its token as `?private_token=`): isomorphic-git appends `/info/refs?…` to
   * the URL as a string, so a URL with a query of its own would break.
   */
  query?: { origin: string; params: URLSearchParams };
}

export function boundedHttpClient(idleTimeoutMs: number, options: BoundedClientOptions = {}): HttpClient {
  const withQuery = (url: string): string => {
    const q = options.query;
    if (!q || q.params.size === 0) return url;
    const u = new URL(url);
    if (u.origin !== q.origin) return url;
    for (const [k, v] of q.params) if (!u.searchParams.has(k)) u.searchParams.append(k, v);
    return u.toString();
  };
  const once = (url: string, method: string, headers: Record<string, string>, body: Buffer | undefined): Promise<http.IncomingMessage> =>
    new Promise((resolve, reject) => {
      const u = new URL(url);
      const mod = u.protocol === 'https:' ? https : http;
      let response: http.IncomingMessage | undefined;
      const req = mod.request(u, { method, headers: body ? { ...headers, 'content-length': String(body.length) } : headers, agent: false }, (res) => {
        response = res;
        resolve(res);
      });
      // Socket inactivity, for the request and (after the headers) the response body alike. Once
      // the headers are in, the body is what isomorphic-git reads: the error must fail that stream,
      // or the reader sees a bare ECONNRESET ("cannot reach the server") instead of the timeout.
      req.setTimeout(idleTimeoutMs, () => {
        const err = new GitTimeoutError(url, idleTimeoutMs);
        if (response && !response.destroyed) response.destroy(err);
        req.destroy(err);
      });
      req.on('error', reject);
      req.end(body);
    });

  // A pass lists the server's refs, then (when the tip moved) fetches: isomorphic-git's fetch asks for
  // the same advertisement again. The one just read answers it, which saves a round trip and a git
  // process on the server; it also fetches exactly the tip the listing saw.
  let lastAdvertisement: { key: string; response: Omit<GitHttpResponse, 'body'>; bytes: Buffer } | undefined;
  const replay = (saved: NonNullable<typeof lastAdvertisement>): GitHttpResponse => ({
    ...saved.response,
    body: (async function* () {
      yield saved.bytes;
    })(),
  });

  return {
    async request(r: GitHttpRequest): Promise<GitHttpResponse> {
      const method = r.method ?? 'GET';
      const body = await collect(r.body);
      let url = r.url;
      let headers = { ...(r.headers ?? {}) };
      const key = `${url}\n${JSON.stringify(headers)}`;
      if (method === 'GET' && lastAdvertisement?.key === key) {
        const saved = lastAdvertisement;
        lastAdvertisement = undefined;
        return replay(saved);
      }
      const origin = new URL(url).origin;
      for (let hop = 0; ; hop++) {
        const res = await once(withQuery(url), method, headers, body);
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if ([301, 302, 303, 307, 308].includes(status) && location && hop < MAX_REDIRECTS && (method === 'GET' || status === 307 || status === 308)) {
          res.resume();
          url = new URL(location, url).toString();
          if (new URL(url).origin !== origin) headers = withoutCredentials(headers);
          continue;
        }
        const resHeaders: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) resHeaders[k] = Array.isArray(v) ? v.join(', ') : v;
        const resBody = res[Symbol.asyncIterator]() as AsyncIterableIterator<Uint8Array>;
        if (method === 'GET' && status === 200 && isUploadPackAdvertisement(url)) {
          const whole = ensureAdvertisedHead(await readAll(res, MAX_ADVERTISEMENT_BYTES, url));
          lastAdvertisement = { key, response: { url, method, statusCode: status, statusMessage: res.statusMessage ?? '', headers: resHeaders }, bytes: whole };
          return replay(lastAdvertisement);
        }
        if (method !== 'GET') lastAdvertisement = undefined;
        return { url, method, statusCode: status, statusMessage: res.statusMessage ?? '', headers: resHeaders, body: resBody };
      }
    },
  };
}

function isUploadPackAdvertisement(url: string): boolean {
  const u = new URL(url);
  return u.pathname.endsWith('/info/refs') && u.searchParams.get('service') === 'git-upload-pack';
}

async function readAll(res: http.IncomingMessage, limit: number, url: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of res) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      res.destroy();
      throw new Error(`ref advertisement from ${new URL(url).origin} is larger than ${limit} bytes`);
    }
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([k]) => !/^(authorization|cookie|proxy-authorization)$/i.test(k)));
}
