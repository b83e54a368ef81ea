/**
 * Git LFS endpoint discovery, after git-lfs's own rules
 * (docs/api/server-discovery.md and lfsapi/endpoint_finder.go):
 *
 *   1. `lfs.pushurl` (uploads only), then `lfs.url`
 *   2. `remote.<name>.lfspushurl` (uploads only), then `remote.<name>.lfsurl`
 *   3. derived from the remote URL: `<url>.git/info/lfs` (or `<url>/info/lfs`
 *      when it already ends in `.git`)
 *
 * For every key the repository's git config wins over `.lfsconfig`, as git
 * config overrides .lfsconfig in git-lfs.
 *
 * Credentials never travel inside the URL: user:password in a URL becomes an
 * Authorization header, and the URL we keep (and print) has none. The token
 * the operator gave us is sent only to the registry's own origin, or to an
 * LFS URL the operator configured in git config; an `.lfsconfig` committed to
 * the registry cannot redirect the site's token to another host.
 */
import { inspect } from 'node:util';
import { ConfigError } from '../errors.ts';
import { redactUrl } from '../util/redact.ts';
import { GitConfig } from './gitconfig.ts';

export type LfsOperation = 'download' | 'upload';

/** An LFS server base URL (`…/info/lfs`) and how to authenticate to it. */
export class LfsEndpoint {
  /** The base URL without credentials and without a trailing slash. */
  readonly url: string;
  readonly #authorization: string | undefined;
  readonly #secrets: readonly string[];
  /** Why a token we have is not sent here (an `.lfsconfig` naming another host), for a 401's message. */
  readonly withheld: string | undefined;

  constructor(url: string, authorization?: string, secrets: readonly string[] = [], withheld?: string) {
    this.url = url;
    this.#authorization = authorization;
    this.#secrets = secrets.filter((s) => s.length >= 4);
    this.withheld = withheld;
  }

  /** The origin (`scheme://host:port`) our Authorization header belongs to. */
  get origin(): string {
    return new URL(this.url).origin;
  }

  /** For messages and logs; never contains credentials. */
  get description(): string {
    return redactUrl(this.url);
  }

  /** The Authorization header value for requests to this endpoint's origin, if any. */
  authorization(): string | undefined {
    return this.#authorization;
  }

  /** Strings that must never appear in a message (tokens, passwords, the header itself). */
  secrets(): readonly string[] {
    return this.#secrets;
  }

  /** Join a path below the endpoint: `objects/batch`, `locks/verify`. */
  resolve(path: string): string {
    return `${this.url}/${path.replace(/^\/+/, '')}`;
  }

  toJSON(): { url: string; authenticated: boolean } {
    return { url: this.description, authenticated: this.#authorization !== undefined };
  }

  [inspect.custom](): string {
    return `LfsEndpoint(${this.description}${this.#authorization ? ', authenticated' : ''})`;
  }
}

export interface DiscoverOptions {
  /** The registry remote: an http(s) URL, ssh://… or scp-like `user@host:path`. May be absent for a local repository. */
  remote?: string;
  /** The remote's name for `remote.<name>.lfsurl` (default `origin`). */
  remoteName?: string;
  /** Text of `.lfsconfig` at the registry commit (the caller reads it). Untrusted. */
  lfsconfig?: string;
  /** Text of the repository's git config, or a parsed one (operator-controlled). */
  gitConfig?: string | GitConfig;
  operation?: LfsOperation;
  /** Token for the registry's origin, sent as the HTTP Basic password. */
  token?: string;
  /** Basic user name to go with the token (default `modelsync`; most servers ignore it). */
  username?: string;
}

/** Find the LFS endpoint of a registry; throws ConfigError when there is none or it is unusable. */
export function discoverEndpoint(opts: DiscoverOptions): LfsEndpoint {
  const found = findEndpointUrl(opts);
  if (!found) {
    throw new ConfigError('no Git LFS endpoint: the registry has no http(s) remote and neither lfs.url nor remote.<name>.lfsurl is set', {
      remote: opts.remote === undefined ? undefined : redactUrl(opts.remote),
    });
  }
  const { url: rawUrl, from } = found;
  const parsed = splitCredentials(rawUrl);
  const secrets = [...parsed.secrets];
  let authorization = parsed.authorization;
  let withheld: string | undefined;

  if (!authorization) {
    // Credentials of the registry remote (in its URL or the token) go to the same origin only,
    // or to a URL the operator configured on this machine (git config).
    const remote = opts.remote && isUrlLike(opts.remote) ? splitCredentials(toHttpUrl(opts.remote) ?? opts.remote) : undefined;
    const sameOrigin = remote !== undefined && safeOrigin(remote.url) === safeOrigin(parsed.url);
    const trusted = from !== 'lfsconfig' || sameOrigin;
    if (opts.token !== undefined && opts.token !== '' && trusted) {
      const user = opts.username ?? parsed.username ?? remote?.username ?? 'modelsync';
      authorization = basic(user, opts.token);
      secrets.push(opts.token);
    } else if (remote?.authorization && sameOrigin) {
      authorization = remote.authorization;
      secrets.push(...remote.secrets);
    }
    if (!authorization && !trusted && ((opts.token !== undefined && opts.token !== '') || remote?.authorization)) {
      withheld = `the token is not sent to other hosts: the registry's .lfsconfig points LFS at ${safeOrigin(parsed.url)}, and the token goes only to the registry's own origin${remote ? ` ${safeOrigin(remote.url)}` : ''} (or an lfs.url set in this machine's git config)`;
    }
  }
  if (authorization) secrets.push(authorization, authorization.replace(/^\S+\s+/, ''));
  return new LfsEndpoint(parsed.url, authorization, secrets, withheld);
}

/** An endpoint from an LFS base URL (`…/info/lfs`) given directly, e.g. by a caller that already knows it. */
export function endpointFromUrl(url: string, auth: { token?: string; username?: string } = {}): LfsEndpoint {
  return discoverEndpoint({ gitConfig: GitConfig.fromEntries({ 'lfs.url': url }), token: auth.token, username: auth.username });
}

type UrlSource = 'gitconfig' | 'lfsconfig' | 'remote';

function findEndpointUrl(opts: DiscoverOptions): { url: string; from: UrlSource } | null {
  const git = typeof opts.gitConfig === 'string' ? GitConfig.parse(opts.gitConfig) : opts.gitConfig ?? new GitConfig();
  const lfs = opts.lfsconfig ? GitConfig.parse(opts.lfsconfig) : new GitConfig();
  const name = opts.remoteName ?? 'origin';
  const keys = [
    ...(opts.operation === 'upload' ? ['lfs.pushurl'] : []),
    'lfs.url',
    ...(opts.operation === 'upload' ? [`remote.${name}.lfspushurl`] : []),
    `remote.${name}.lfsurl`,
  ];
  for (const key of keys) {
    const fromGit = git.get(key);
    if (fromGit) return { url: checkLfsUrl(fromGit, key), from: 'gitconfig' };
    const fromLfs = lfs.get(key);
    if (fromLfs) return { url: checkLfsUrl(fromLfs, `.lfsconfig ${key}`), from: 'lfsconfig' };
  }
  if (opts.remote && isUrlLike(opts.remote)) {
    const http = toHttpUrl(opts.remote);
    if (http) return { url: deriveFromRemote(http), from: 'remote' };
  }
  return null;
}

/** `https://host/org/repo` → `https://host/org/repo.git/info/lfs` (trailing slashes, query and fragment dropped). */
export function deriveFromRemote(remote: string): string {
  const u = new URL(remote);
  u.search = '';
  u.hash = '';
  let path = u.pathname.replace(/\/+$/, '');
  if (!path.endsWith('.git')) path += '.git';
  u.pathname = `${path}/info/lfs`;
  return u.toString();
}

function checkLfsUrl(value: string, key: string): string {
  const http = toHttpUrl(value.trim());
  if (!http) throw new ConfigError(`${key} must be an http(s) URL, got ${JSON.stringify(redactUrl(value))}`, { key });
  const u = new URL(http);
  u.search = '';
  u.hash = '';
  u.pathname = u.pathname.replace(/\/+$/, '');
  return u.toString().replace(/\/+$/, '');
}

/** Whether a remote string is a URL (or scp-like ssh address) rather than a local path. */
export function isUrlLike(remote: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(remote) || isScpLike(remote);
}

function isScpLike(remote: string): boolean {
  // git: `[user@]host:path`, where the host has no slash before the colon; `C:\…` is a Windows path.
  return /^(?:[^@/\s]+@)?[^/:\s]{2,}:(?!\/\/)/.test(remote) && !/^[A-Za-z]:[\\/]/.test(remote);
}

/**
 * The https URL git-lfs would use for a remote: http(s) as is; ssh and
 * scp-like addresses map to https on the same host and path (git-lfs does the
 * same when no `git-lfs-authenticate` is involved). null for file:// and others.
 */
function toHttpUrl(remote: string): string | null {
  if (/^https?:\/\//i.test(remote)) {
    try {
      return new URL(remote).toString();
    } catch {
      throw new ConfigError(`not a valid URL: ${JSON.stringify(redactUrl(remote))}`);
    }
  }
  if (/^(?:git\+)?ssh:\/\//i.test(remote)) {
    const u = new URL(remote.replace(/^git\+/i, ''));
    return `https://${u.hostname}${u.pathname}`;
  }
  if (isScpLike(remote)) {
    const m = /^(?:[^@/\s]+@)?([^/:\s]+):(.*)$/.exec(remote)!;
    return `https://${m[1]}/${m[2]!.replace(/^\/+/, '')}`;
  }
  return null;
}

interface SplitUrl {
  url: string;
  username?: string;
  authorization?: string;
  secrets: string[];
}

/** Move `user:password@` out of a URL into an Authorization header. */
function splitCredentials(raw: string): SplitUrl {
  const u = new URL(raw);
  const secrets: string[] = [];
  let username: string | undefined;
  let authorization: string | undefined;
  if (u.username || u.password) {
    username = safeDecode(u.username);
    const password = safeDecode(u.password);
    if (password) {
      authorization = basic(username || 'modelsync', password);
      secrets.push(password, u.password);
    } else if (username) {
      // A lone user name may be a token (`https://<token>@host`): keep it out of messages too.
      secrets.push(username, u.username);
    }
    u.username = '';
    u.password = '';
  }
  return { url: u.toString().replace(/\/+$/, ''), username, authorization, secrets };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '';
  }
}
