/**
 * The hub's HTTP front: routes a request, decides who is asking and whether
 * they may, then hands it to Git (http-backend), the LFS object store, the
 * event stream or the fleet status store. Errors come back in the format the
 * caller's client understands: LFS JSON for LFS, plain text for Git, JSON for
 * the API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { SHA256_RE } from '../util/hash.ts';
import { ActionTokens, LOOPBACK_IDENTITY, credentialsFrom, maySiteReport, roleAtLeast, type ActionOp, type Identity, type Role, type TokenTable } from './auth.ts';
import { EventHub } from './events.ts';
import { runHttpBackend } from './git-http.ts';
import { HttpError, JSON_TYPE, LFS_TYPE, isLoopback, isLoopbackHost, nestedDeeperThan, readJsonBody, requireMediaType, sendJson, sendText } from './http-util.ts';
import { parseBatchRequest, planBatch, type BatchAction } from './lfs-batch.ts';
import { LfsObjects } from './lfs-objects.ts';
import type { HubLimits } from './limits.ts';
import { Metrics } from './metrics.ts';
import { RepoStore, diffRefs, repoNameProblem } from './repos.ts';
import { HubRollouts } from './rollouts.ts';
import { SitesStatus, siteNameProblem } from './sites-status.ts';
import { HistoryCache, serveDashboard } from './dashboard/index.ts';
import { registerSiteMetrics } from './fleet-metrics.ts';
import { Slots } from './slots.ts';
import { listenError } from '../util/listen-error.ts';

export interface HubServerOptions {
  data: string;
  /** Null: no tokens file, loopback peers only. */
  tokens: TokenTable | null;
  logger: Logger;
  heartbeatMs: number;
  publicUrl?: string;
  limits: HubLimits;
  /** Rounds of the rollout controller over the hub's repos (0: no controller). */
  rolloutIntervalMs?: number;
  /** The controller's clock (tests). */
  rolloutNow?: () => Date;
  /** Missed schedule periods after which a silent site is Stale (default 3). */
  staleFactor?: number;
  /** How often the hub re-derives conditions to notice silent sites (default 30 s). */
  sweepMs?: number;
}

/** How a route reports errors. */
type Family = 'git' | 'lfs' | 'api' | 'plain';

interface Route {
  name: string;
  family: Family;
  repo?: string;
  handle: (ctx: RequestContext) => Promise<void>;
}

interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: RequestTarget;
  route: Route;
  /** Set once authorised. */
  who?: Identity;
}

const BASIC_CHALLENGE = 'Basic realm="modelsync"';

/**
 * The request target exactly as sent: no percent-decoding and no dot-segment
 * resolution (WHATWG URL parsing would turn `/x/../r.git` into `/r.git` and
 * `//host/p` into another host), so what we route on is what we validate.
 */
interface RequestTarget {
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

export class HubServer {
  readonly server: Server;
  readonly repos: RepoStore;
  readonly objects: LfsObjects;
  readonly events: EventHub;
  readonly sites: SitesStatus;
  readonly metrics = new Metrics();
  readonly rollouts: HubRollouts | undefined;
  private readonly actions = new ActionTokens();
  private readonly inflight = new Set<ServerResponse>();
  private readonly gitSlots: Slots;
  /** Open event streams per token name. */
  private readonly streamsByToken = new Map<string, number>();
  /** Per token, its share of the git slots: past it a token's requests wait, taking no global slot. */
  private readonly gitByToken = new Map<string, Slots>();
  private baseUrl = '';
  /** Replaced when the tokens file changes (setTokens). */
  private tokens: TokenTable | null;
  private readonly history: HistoryCache;
  private readonly sweepTimer: NodeJS.Timeout;
  private closing: Promise<void> | null = null;
  private lfsObjectCount = 0;

  private readonly countRequest;
  private readonly countIn;
  private readonly countOut;
  private readonly countStored;
  private readonly countStoredBytes;
  private readonly countRejected;
  private readonly countRefEvents;
  private readonly countAuthFailures;
  /**
   * Bytes of each connection already counted. The socket has read the
   * request's headers, and often its whole body, by the time dispatch runs,
   * so a delta from dispatch would miss them: each request is charged what
   * its connection read since the previous one finished instead.
   */
  private readonly countedRead = new WeakMap<Socket, number>();
  /** Host names besides loopback ones a tokenless hub answers to: that of --public-url (parsed once, not per request). */
  private readonly publicHosts: readonly string[];

  constructor(private readonly opts: HubServerOptions) {
    this.publicHosts = hostsOf(opts.publicUrl);
    this.repos = new RepoStore(opts.data);
    this.objects = new LfsObjects(this.repos);
    this.tokens = opts.tokens;
    this.sites = new SitesStatus(opts.data, opts.logger, { staleFactor: opts.staleFactor });
    this.events = new EventHub({ ringSize: opts.limits.eventRing, heartbeatMs: opts.heartbeatMs, maxSubscribers: opts.limits.eventSubscribers });
    this.history = new HistoryCache(async () => (await this.repos.list()).map((repo) => ({ repo, gitDir: this.repos.gitDir(repo) })));
    this.events.on('ref', (e) => this.history.invalidate(e.repo));
    // Dashboards and `wait` learn of a report, or of a site gone silent, within a second.
    this.sites.on('report', (r) => this.events.publishSite({ site: r.site, condition: this.sites.condition(r.site)?.condition ?? 'Unknown', receivedAt: r.receivedAt }));
    this.sites.on('transition', (t) => { if (t.from !== null) this.events.publishSite({ site: t.site, condition: t.to, receivedAt: this.sites.get(t.site)?.receivedAt ?? t.at }); });
    this.sweepTimer = setInterval(() => this.sites.sweep(), opts.sweepMs ?? 30_000);
    this.sweepTimer.unref();
    const m = this.metrics;
    this.countRequest = m.counter('modelsync_hub_http_requests_total', 'HTTP requests answered, by route, method and status code.');
    this.countIn = m.counter('modelsync_hub_http_received_bytes_total', 'Bytes received from clients (headers included), by route.');
    this.countOut = m.counter('modelsync_hub_http_sent_bytes_total', 'Bytes sent to clients (headers included), by route.');
    this.countStored = m.counter('modelsync_hub_lfs_objects_stored_total', 'LFS uploads verified and stored (new objects only).');
    this.countStoredBytes = m.counter('modelsync_hub_lfs_stored_bytes_total', 'Bytes of new LFS objects stored.');
    this.countRejected = m.counter('modelsync_hub_lfs_uploads_rejected_total', 'LFS uploads refused, by reason.');
    this.countRefEvents = m.counter('modelsync_hub_ref_events_total', 'Ref change events published.');
    this.countAuthFailures = m.counter('modelsync_hub_auth_failures_total', 'Requests refused for missing or invalid credentials (401) or insufficient role (403).');
    if (opts.rolloutIntervalMs) {
      this.rollouts = new HubRollouts({
        repos: this.repos, sites: this.sites, events: this.events, logger: opts.logger, intervalMs: opts.rolloutIntervalMs, now: opts.rolloutNow, onEvent: () => this.countRefEvents(),
      });
    }
    m.gauge('modelsync_hub_lfs_objects', 'LFS objects on disk across repositories (counted at start, then as they are stored).', () => this.lfsObjectCount);
    m.gauge('modelsync_hub_event_subscribers', 'Open server-sent event streams.', () => this.events.subscriberCount);
    m.gauge('modelsync_hub_sites', 'Sites with a stored status report.', () => this.sites.size);
    registerSiteMetrics(m, this.sites);
    m.gauge('modelsync_hub_http_inflight_requests', 'Requests being answered right now.', () => this.inflight.size);
    m.gauge('modelsync_hub_start_time_seconds', 'When this hub process started (Unix time).')(Math.floor(Date.now() / 1000));
    this.gitSlots = new Slots(opts.limits.gitProcesses, opts.limits.gitQueue);
    m.gauge('modelsync_hub_git_processes', 'git http-backend processes running.', () => this.gitSlots.inUse);
    m.gauge('modelsync_hub_git_queued_requests', 'Git requests waiting for a process slot.', () => this.gitSlots.queued);
    // No overall request deadline (a model upload may take hours) but an idle
    // one: a socket that moves no bytes either way for idleTimeoutMs is closed.
    // Headers do get a deadline: with requestTimeout 0 Node turns its own
    // headersTimeout off, and a client dripping a byte now and then would hold
    // a socket without ever showing a token. Node enforces it on a timer that
    // runs every connectionsCheckingInterval, so that runs often enough to
    // keep the deadline within a quarter of itself.
    const headersTimeout = opts.limits.headersTimeoutMs;
    this.server = createServer(
      { keepAliveTimeout: 65_000, requestTimeout: 0, headersTimeout, connectionsCheckingInterval: Math.max(50, Math.min(30_000, Math.floor(headersTimeout / 4))) },
      (req, res) => void this.dispatch(req, res),
    );
    this.server.setTimeout(opts.limits.idleTimeoutMs);
    this.server.maxConnections = opts.limits.maxConnections;
  }

  async listen(host: string, port: number): Promise<string> {
    const leftover = await this.repos.init();
    if (leftover.entries > 0) this.opts.logger.info({ dir: this.repos.tmpDir, entries: leftover.entries, bytes: leftover.bytes }, 'removed partial uploads an earlier hub left in tmp/');
    await this.sites.load();
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException): void => reject(listenError(host, port, err));
      this.server.once('error', fail);
      this.server.listen(port, host, () => {
        this.server.off('error', fail);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    const shownHost = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
    this.baseUrl = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${addr.port}`;
    void this.countObjectsOnDisk();
    this.rollouts?.start();
    return this.baseUrl;
  }

  /** Stop accepting, end event streams, let in-flight requests finish (up to the grace period). */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.rollouts?.stop();
      clearInterval(this.sweepTimer);
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.events.close();
      this.server.closeIdleConnections();
      const deadline = Date.now() + this.opts.limits.shutdownGraceMs;
      while (this.inflight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      this.server.closeAllConnections();
      await closed;
      await this.sites.flush();
    })();
    return this.closing;
  }

  /**
   * A new token table (the tokens file changed): requests from now on are
   * judged by it, and event streams opened with a token it no longer holds
   * end at once.
   */
  setTokens(table: TokenTable): number {
    this.tokens = table;
    return this.events.endStreams((key) => table.hasHash(key));
  }

  // ---- dispatch ----

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const sock = req.socket;
    const writtenAtStart = sock.bytesWritten;
    this.inflight.add(res);
    const url = parseTarget(req.url);
    const route = this.route(req, url);
    const ctx: RequestContext = { req, res, url, route };
    res.on('close', () => {
      this.inflight.delete(res);
      const method = req.method ?? 'GET';
      // A response that never finished went to a client that hung up: its
      // statusCode is only what we meant to send (200 by default, before any
      // writeHead), so count it as nginx does, 499. Event streams end when
      // the client leaves by design.
      const aborted = !res.writableFinished && route.name !== 'events';
      const status = aborted ? 499 : res.statusCode;
      this.countRequest({ route: route.name, method, code: String(status) });
      this.countIn({ route: route.name }, this.takeBytesRead(sock));
      this.countOut({ route: route.name }, Math.max(0, sock.bytesWritten - writtenAtStart));
      // Path and token name only: never headers, query secrets or credentials.
      this.opts.logger.debug({ method, path: url.pathname, route: route.name, status, ...(aborted ? { aborted: true } : {}), ms: Date.now() - started, who: ctx.who?.name, peer: sock.remoteAddress }, 'request');
    });
    try {
      if (this.closing) throw new HttpError(503, 'ShuttingDown', 'the hub is shutting down', { Connection: 'close' });
      await route.handle(ctx);
    } catch (err) {
      this.fail(ctx, err);
    }
  }

  private takeBytesRead(sock: Socket): number {
    const total = sock.bytesRead;
    const n = total - (this.countedRead.get(sock) ?? 0);
    this.countedRead.set(sock, total);
    return Math.max(0, n);
  }

  private fail(ctx: RequestContext, err: unknown): void {
    const { res, route } = ctx;
    const e = err instanceof HttpError ? err : null;
    // A client that hangs up mid-transfer is routine (it will resume with Range), not a hub error.
    const clientGone = res.destroyed || (err as NodeJS.ErrnoException | null)?.code === 'ERR_STREAM_PREMATURE_CLOSE';
    if (!e && clientGone) this.opts.logger.debug({ route: route.name, path: ctx.url.pathname }, 'client went away mid-response');
    else if (!e) this.opts.logger.error({ route: route.name, path: ctx.url.pathname, err: (err as Error)?.stack ?? String(err) }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const status = e?.status ?? 500;
    const code = e?.code ?? 'InternalError';
    const message = e?.message ?? 'internal error';
    const headers = { ...(e?.headers ?? {}) };
    if (status === 401 && route.family === 'lfs') headers['LFS-Authenticate'] = BASIC_CHALLENGE;
    // A request refused before its body was read would otherwise have the
    // body drained for keep-alive: whatever the client sends, for as long as
    // it likes. Hang up after the answer instead.
    if (!ctx.req.complete) headers.Connection = 'close';
    if (route.family === 'lfs') sendJson(res, status, { message, code }, LFS_TYPE, headers);
    else if (route.family === 'api') sendJson(res, status, { error: { code, message } }, JSON_TYPE, headers);
    else sendText(res, status, message, headers);
  }

  private route(req: IncomingMessage, url: RequestTarget): Route {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const notFound: Route = { name: 'other', family: 'plain', handle: async () => { throw new HttpError(404, 'NotFound', 'not found'); } };
    const only = (r: Route, ...methods: string[]): Route =>
      methods.includes(method) ? r : { ...r, handle: async () => { throw new HttpError(405, 'MethodNotAllowed', `use ${methods.join(' or ')}`, { Allow: methods.join(', ') }); } };

    if (path === '/') return only({ name: 'index', family: 'plain', handle: (c) => this.index(c) }, 'GET', 'HEAD');
    if (path === '/healthz') return only({ name: 'healthz', family: 'api', handle: (c) => this.healthz(c) }, 'GET', 'HEAD');
    if (path === '/metrics') return only({ name: 'metrics', family: 'plain', handle: (c) => this.metricsPage(c) }, 'GET');
    if (path === '/api/v1/events') return only({ name: 'events', family: 'api', handle: (c) => this.eventStream(c) }, 'GET');
    if (path === '/api/v1/sites') return only({ name: 'sites', family: 'api', handle: (c) => this.listSites(c) }, 'GET');
    if (path === '/api/v1/rollouts') return only({ name: 'rollouts', family: 'api', handle: (c) => this.listRollouts(c) }, 'GET');
    const site = /^\/api\/v1\/sites\/([^/]+)\/status$/.exec(path);
    if (site) return only({ name: 'site-status', family: 'api', handle: (c) => this.reportSite(c, site[1]!) }, 'POST');
    if (path.startsWith('/api/')) return { ...notFound, family: 'api' };

    const m = /^\/([^/]*)\.git\/(.*)$/.exec(path);
    if (!m) return notFound;
    const repo = m[1]!;
    const rest = m[2]!;
    const isLfs = rest.startsWith('info/lfs/');
    const problem = repoNameProblem(repo);
    if (problem) {
      return { name: isLfs ? 'lfs-other' : 'git-other', family: isLfs ? 'lfs' : 'git', handle: async () => { throw new HttpError(400, 'InvalidRepoName', `invalid repository name: ${problem}`); } };
    }
    if (rest === 'info/refs') return only({ name: 'git-info-refs', family: 'git', repo, handle: (c) => this.git(c, repo, rest) }, 'GET');
    if (rest === 'git-upload-pack' || rest === 'git-receive-pack') return only({ name: rest, family: 'git', repo, handle: (c) => this.git(c, repo, rest) }, 'POST');
    if (!isLfs) return { ...notFound, family: 'git', name: 'git-other' };

    const lfs = rest.slice('info/lfs/'.length);
    if (lfs === 'objects/batch') return only({ name: 'lfs-batch', family: 'lfs', repo, handle: (c) => this.batch(c, repo) }, 'POST');
    if (lfs === 'locks/verify') return only({ name: 'lfs-locks', family: 'lfs', repo, handle: (c) => this.locksVerify(c) }, 'POST');
    if (lfs === 'locks') return only({ name: 'lfs-locks', family: 'lfs', repo, handle: (c) => this.locksList(c) }, 'GET');
    const obj = /^objects\/([^/]*)(\/verify)?$/.exec(lfs);
    if (obj) {
      const oid = obj[1]!;
      const bad = (name: string): Route => ({ name, family: 'lfs', repo, handle: async () => { throw new HttpError(422, 'InvalidOid', 'invalid oid: must be 64 lowercase hex characters'); } });
      if (obj[2]) return SHA256_RE.test(oid) ? only({ name: 'lfs-verify', family: 'lfs', repo, handle: (c) => this.verify(c, repo, oid) }, 'POST') : bad('lfs-verify');
      if (!SHA256_RE.test(oid)) return bad(method === 'PUT' ? 'lfs-upload' : 'lfs-download');
      if (method === 'PUT') return { name: 'lfs-upload', family: 'lfs', repo, handle: (c) => this.upload(c, repo, oid) };
      return only({ name: 'lfs-download', family: 'lfs', repo, handle: (c) => this.download(c, repo, oid) }, 'GET', 'HEAD');
    }
    return { ...notFound, family: 'lfs', name: 'lfs-other' };
  }

  // ---- who may ----

  /** Establish the caller's identity and require `role`; throws 401/403. */
  private authorize(ctx: RequestContext, role: Role): Identity {
    const who = this.identify(ctx);
    if (!roleAtLeast(who.role, role)) {
      this.countAuthFailures({ reason: 'forbidden' });
      this.opts.logger.info({ who: who.name, role: who.role, needed: role, route: ctx.route.name, repo: ctx.route.repo }, 'request refused: role insufficient');
      throw new HttpError(403, 'Forbidden', `token "${who.name}" (role ${who.role}) may not do this; role ${role} is needed`);
    }
    ctx.who = who;
    return who;
  }

  private identify(ctx: RequestContext): Identity {
    if (!this.tokens) {
      if (!isLoopback(ctx.req.socket.remoteAddress)) {
        this.countAuthFailures({ reason: 'not-loopback' });
        throw new HttpError(403, 'Forbidden', 'this hub runs without a tokens file and serves loopback clients only');
      }
      if (!isLoopbackHost(ctx.req.headers.host, this.publicHosts)) {
        this.countAuthFailures({ reason: 'foreign-host' });
        throw new HttpError(403, 'Forbidden', 'this hub runs without a tokens file and answers only to loopback host names (localhost, 127.0.0.1, [::1]) or --public-url');
      }
      return LOOPBACK_IDENTITY;
    }
    const creds = credentialsFrom(ctx.req.headers.authorization);
    if (!creds) {
      this.countAuthFailures({ reason: 'missing' });
      throw new HttpError(401, 'Unauthorized', 'credentials required (a token as the HTTP Basic password or as a Bearer token)', { 'WWW-Authenticate': BASIC_CHALLENGE });
    }
    const who = this.tokens.authenticate(creds.secret);
    if (!who) {
      this.countAuthFailures({ reason: 'invalid' });
      throw new HttpError(401, 'Unauthorized', 'invalid token', { 'WWW-Authenticate': BASIC_CHALLENGE });
    }
    return who;
  }

  /**
   * LFS object routes also accept the action token the batch response signed
   * for exactly this object; returns the size that grant bound an upload to.
   */
  private authorizeObject(ctx: RequestContext, repo: string, oid: string, op: ActionOp): { size?: number } {
    const creds = credentialsFrom(ctx.req.headers.authorization);
    if (creds && ActionTokens.looksLikeOne(creds.secret)) {
      const grant = this.actions.grant(creds.secret, { repo, oid, op });
      if (grant) {
        ctx.who = { name: `action:${op}`, role: op === 'upload' ? 'publisher' : 'site', sites: [] };
        return { size: grant.size };
      }
      this.countAuthFailures({ reason: 'invalid-action' });
      throw new HttpError(401, 'Unauthorized', 'expired or invalid action token; request the batch endpoint again', { 'WWW-Authenticate': BASIC_CHALLENGE });
    }
    this.authorize(ctx, op === 'upload' ? 'publisher' : 'site');
    return {};
  }

  // ---- plain endpoints ----

  private async index(ctx: RequestContext): Promise<void> {
    // Site tokens are for agents: what every other site runs is for operators.
    this.authorize(ctx, 'publisher');
    await serveDashboard(ctx.res, { sites: this.sites, history: this.history, base: this.publicBase(ctx.req), head: ctx.req.method === 'HEAD' });
  }

  private async healthz(ctx: RequestContext): Promise<void> {
    if (!this.tokens) this.identify(ctx);
    sendJson(ctx.res, 200, { ok: true });
  }

  private async metricsPage(ctx: RequestContext): Promise<void> {
    if (!this.tokens) this.identify(ctx);
    const text = this.metrics.render();
    ctx.res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    ctx.res.end(text);
  }

  // ---- Git ----

  private async git(ctx: RequestContext, repo: string, rest: string): Promise<void> {
    const service = rest === 'info/refs' ? ctx.url.searchParams.get('service') : rest;
    if (rest === 'info/refs' && service !== 'git-upload-pack' && service !== 'git-receive-pack') {
      throw new HttpError(403, 'DumbProtocol', 'only the smart HTTP protocol is served (git ≥ 1.6.6)');
    }
    const push = service === 'git-receive-pack';
    const who = this.authorize(ctx, push ? 'publisher' : 'site');
    if (push) {
      if (await this.repos.ensure(repo)) this.opts.logger.info({ repo, who: who.name }, 'repository created by push');
    } else if (!(await this.repos.exists(repo))) {
      throw new HttpError(404, 'RepoNotFound', `repository ${repo} not found`);
    }
    // git http-backend reads the *last* `service=` of a query, URLSearchParams
    // the first: hand git exactly the service that was authorised, nothing else.
    const backend = {
      projectRoot: this.repos.reposDir,
      pathInfo: `/${repo}.git/${rest}`,
      query: rest === 'info/refs' ? `service=${service}` : '',
      remoteUser: who.name,
      maxBodyBytes: this.opts.limits.gitBodyBytes,
      logger: this.opts.logger,
    };
    const gone = new Promise<void>((resolve) => ctx.res.once('close', () => resolve()));
    // Loopback mode has one identity for every local client: only the global cap there.
    const release = await this.gitSlot(this.tokens ? who.name : null, gone);
    if (!release) {
      if (ctx.res.destroyed) return;
      throw new HttpError(503, 'TooManyGitRequests', 'the hub is busy with other git requests; retry shortly', { 'Retry-After': '5' });
    }
    try {
      await this.runGit(ctx, repo, rest, who, backend);
    } finally {
      release();
    }
  }

  /**
   * A git process slot for a request by token `name` (null: no per-token
   * share); null if a queue is full or the client left while waiting. The
   * token's share comes first (waiting there holds no global slot), so one
   * token dripping request bodies slowly holds at most its share and a
   * publisher still pushes; agents sharing a token queue rather than fail.
   */
  private async gitSlot(name: string | null, gone: Promise<void>): Promise<(() => void) | null> {
    if (name === null) return this.gitSlots.acquire(gone);
    const share = this.gitByToken.get(name) ?? new Slots(this.opts.limits.gitProcessesPerToken, this.opts.limits.gitQueue);
    this.gitByToken.set(name, share);
    const releaseShare = await share.acquire(gone);
    const release = releaseShare && (await this.gitSlots.acquire(gone));
    const done = (): void => {
      releaseShare?.();
      // An idle share is dropped, so the map holds only tokens with git requests under way.
      if (share.inUse === 0 && share.queued === 0 && this.gitByToken.get(name) === share) this.gitByToken.delete(name);
    };
    if (!release) {
      done();
      return null;
    }
    return () => {
      release();
      done();
    };
  }

  private async runGit(ctx: RequestContext, repo: string, rest: string, who: Identity, backend: Parameters<typeof runHttpBackend>[2]): Promise<void> {
    if (rest !== 'git-receive-pack') {
      await runHttpBackend(ctx.req, ctx.res, backend);
      return;
    }
    // Hold the repo's lock across the push so the ref diff is this push's
    // alone, and publish before the response ends so a client whose push
    // returned can rely on the event being out.
    await this.repos.withLock(repo, async () => {
      const before = await this.repos.refs(repo);
      let published = false;
      const publish = async (): Promise<void> => {
        if (published) return;
        published = true;
        const after = await this.repos.refs(repo);
        const changes = diffRefs(before, after);
        if (changes.length === 0) return;
        await this.repos.repairHead(repo, after).catch((err: Error) => this.opts.logger.warn({ repo, err: err.message }, 'could not repair HEAD'));
        const at = new Date().toISOString();
        for (const c of changes) {
          const id = this.events.publish({ repo, ref: c.ref, before: c.before, after: c.after, at });
          this.countRefEvents();
          this.opts.logger.info({ repo, ref: c.ref, before: c.before, after: c.after, who: who.name, id }, 'ref updated');
        }
      };
      try {
        await runHttpBackend(ctx.req, ctx.res, { ...backend, beforeEnd: publish });
      } finally {
        // Refs may have moved even if the response failed (client gone mid-report).
        await publish();
      }
    });
  }

  // ---- LFS ----

  private async batch(ctx: RequestContext, repo: string): Promise<void> {
    // Read and check the request before anything else happens, so garbage changes nothing.
    this.identify(ctx);
    requireMediaType(ctx.req, [LFS_TYPE, JSON_TYPE]);
    const request = parseBatchRequest(await readJsonBody(ctx.req, this.opts.limits.batchBodyBytes));
    const upload = request.operation === 'upload';
    const who = this.authorize(ctx, upload ? 'publisher' : 'site');
    if (upload) {
      if (await this.repos.ensure(repo)) this.opts.logger.info({ repo, who: who.name }, 'repository created by LFS upload');
    } else if (!(await this.repos.exists(repo))) {
      throw new HttpError(404, 'RepoNotFound', `repository ${repo} not found`);
    }
    const base = `${this.publicBase(ctx.req)}/${repo}.git/info/lfs/objects`;
    const ttl = this.opts.limits.actionTtlSeconds;
    const action = (oid: string, op: 'download' | 'upload' | 'verify', size: number): BatchAction => {
      const a: BatchAction = { href: op === 'verify' ? `${base}/${oid}/verify` : `${base}/${oid}`, expires_in: ttl };
      // An upload grant carries the declared size: the PUT must match it, not merely the hub's object limit.
      const grant = op === 'download' ? { repo, oid, op } : { repo, oid, op: 'upload' as const, size };
      if (this.tokens) a.header = { Authorization: `Bearer ${this.actions.mint(grant, ttl)}` };
      return a;
    };
    const response = await planBatch(request, {
      storedSize: (oid) => this.objects.size(repo, oid),
      action,
      maxObjectBytes: this.opts.limits.objectBytes,
    });
    sendJson(ctx.res, 200, response, LFS_TYPE);
  }

  private async download(ctx: RequestContext, repo: string, oid: string): Promise<void> {
    this.authorizeObject(ctx, repo, oid, 'download');
    await this.objects.serve(ctx.req, ctx.res, repo, oid);
  }

  private async upload(ctx: RequestContext, repo: string, oid: string): Promise<void> {
    // receive() may destroy the request (an oversized chunked body), which
    // detaches req.socket: keep the socket to restore its idle timeout.
    const sock = ctx.req.socket;
    const grant = this.authorizeObject(ctx, repo, oid, 'upload');
    if (!(await this.repos.exists(repo))) throw new HttpError(404, 'RepoNotFound', `repository ${repo} not found; start with a batch request`);
    let stored;
    try {
      stored = await this.objects.receive(ctx.req, repo, oid, { maxBytes: this.opts.limits.objectBytes, expectedSize: grant.size });
    } catch (err) {
      if (err instanceof HttpError) {
        this.countRejected({ reason: err.code });
        this.opts.logger.warn({ repo, oid, who: ctx.who?.name, reason: err.code, message: err.message }, 'LFS upload rejected');
      }
      throw err;
    } finally {
      // receive() lifts the idle timeout once the body is in (its fsync is the hub's time, not the client's);
      // the next request on this connection gets it back.
      if (!sock.destroyed) sock.setTimeout(this.opts.limits.idleTimeoutMs);
    }
    if (stored.created) {
      this.lfsObjectCount += 1;
      this.countStored();
      this.countStoredBytes({}, stored.size);
    }
    this.opts.logger.info({ repo, oid, size: stored.size, created: stored.created, who: ctx.who?.name }, 'LFS object stored');
    ctx.res.writeHead(200, { 'Content-Length': 0 });
    ctx.res.end();
  }

  private async verify(ctx: RequestContext, repo: string, oid: string): Promise<void> {
    this.authorizeObject(ctx, repo, oid, 'upload');
    requireMediaType(ctx.req, [LFS_TYPE, JSON_TYPE]);
    const body = (await readJsonBody(ctx.req, this.opts.limits.smallJsonBytes)) as { oid?: unknown; size?: unknown } | null;
    if (!body || typeof body !== 'object' || body.oid !== oid || typeof body.size !== 'number') {
      throw new HttpError(422, 'InvalidVerifyRequest', 'verify body must be {"oid": <the oid in the URL>, "size": <bytes>}');
    }
    const size = await this.objects.size(repo, oid);
    if (size === null) throw new HttpError(404, 'ObjectNotFound', `object ${oid} not found`);
    if (size !== body.size) throw new HttpError(422, 'SizeMismatch', `the hub has ${size} bytes for ${oid}, not ${body.size}`);
    sendJson(ctx.res, 200, { oid, size }, LFS_TYPE);
  }

  /**
   * The hub does not implement file locking. A 501 on locks/verify is what
   * git-lfs understands as "no locking API here": it records
   * `lfs.<url>.locksverify false` and pushes without a word, where a 200 would
   * print advice (with the remote URL, credentials and all) on every push.
   */
  private async locksVerify(ctx: RequestContext): Promise<void> {
    this.authorize(ctx, 'publisher');
    throw new HttpError(501, 'NotImplemented', 'this hub does not implement Git LFS file locking');
  }

  private async locksList(ctx: RequestContext): Promise<void> {
    this.authorize(ctx, 'site');
    sendJson(ctx.res, 200, { locks: [] }, LFS_TYPE);
  }

  // ---- events and fleet status ----

  private async eventStream(ctx: RequestContext): Promise<void> {
    this.authorize(ctx, 'site');
    const repo = ctx.url.searchParams.get('repo');
    if (repo !== null && repoNameProblem(repo)) throw new HttpError(400, 'InvalidRepoName', `invalid repo filter: ${repoNameProblem(repo)}`);
    const header = ctx.req.headers['last-event-id'];
    const lastId = (typeof header === 'string' ? header : undefined) ?? ctx.url.searchParams.get('lastEventId') ?? undefined;
    const who = ctx.who!;
    // Site events name every site and its condition: operators' business, not a site token's.
    const sites = ctx.url.searchParams.get('sites') === '1';
    if (sites && !roleAtLeast(who.role, 'publisher')) throw new HttpError(403, 'Forbidden', `token "${who.name}" (role ${who.role}) may not follow site events; role publisher is needed`);
    const mine = this.streamsByToken.get(who.name) ?? 0;
    // Loopback mode has one identity for every local client: only the global cap applies there.
    if (this.tokens && mine >= this.opts.limits.eventSubscribersPerToken) {
      throw new HttpError(503, 'TooManySubscribers', `token "${who.name}" already holds ${mine} event streams; close one or retry later`, { 'Retry-After': '30' });
    }
    const creds = this.tokens ? credentialsFrom(ctx.req.headers.authorization) : null;
    const token = creds ? createHash('sha256').update(creds.secret, 'utf8').digest('hex') : null;
    if (!this.events.subscribe(ctx.req, ctx.res, { repo, lastId, sites, token })) {
      throw new HttpError(503, 'TooManySubscribers', 'too many event subscribers; retry later', { 'Retry-After': '30' });
    }
    // A stream is quiet between heartbeats by design: the idle timeout is not for it.
    ctx.req.socket.setTimeout(0);
    this.streamsByToken.set(who.name, mine + 1);
    ctx.res.once('close', () => {
      const n = (this.streamsByToken.get(who.name) ?? 1) - 1;
      if (n > 0) this.streamsByToken.set(who.name, n);
      else this.streamsByToken.delete(who.name);
    });
  }

  private async reportSite(ctx: RequestContext, site: string): Promise<void> {
    const who = this.authorize(ctx, 'site');
    const problem = siteNameProblem(site);
    if (problem) throw new HttpError(400, 'InvalidSiteName', `invalid site name: ${problem}`);
    if (!maySiteReport(who, site)) {
      this.countAuthFailures({ reason: 'forbidden' });
      throw new HttpError(403, 'Forbidden', `token "${who.name}" may not report for site ${site}`);
    }
    requireMediaType(ctx.req, [JSON_TYPE]);
    const body = await readJsonBody(ctx.req, this.opts.limits.statusBodyBytes);
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HttpError(422, 'InvalidReport', 'a status report must be a JSON object');
    if (nestedDeeperThan(body, this.opts.limits.jsonDepth)) throw new HttpError(422, 'InvalidReport', `a status report may nest at most ${this.opts.limits.jsonDepth} levels deep`);
    const rec = await this.sites.put(site, body as Record<string, unknown>);
    sendJson(ctx.res, 200, { ok: true, site, receivedAt: rec.receivedAt });
    this.rollouts?.nudge();
  }

  private async listSites(ctx: RequestContext): Promise<void> {
    const who = this.authorize(ctx, 'site');
    // A site token sees only the sites it reports for.
    const filter = roleAtLeast(who.role, 'publisher') ? undefined : (s: string): boolean => maySiteReport(who, s);
    sendJson(ctx.res, 200, { sites: this.sites.list(filter) });
  }

  private async listRollouts(ctx: RequestContext): Promise<void> {
    this.authorize(ctx, 'publisher');
    sendJson(ctx.res, 200, { rollouts: this.rollouts?.views() ?? [] });
  }

  // ---- helpers ----

  private publicBase(req: IncomingMessage): string {
    if (this.opts.publicUrl) return this.opts.publicUrl.replace(/\/+$/, '');
    // The client reached us at Host; hrefs must work from where it stands.
    const host = req.headers.host;
    if (host && /^[A-Za-z0-9.\-:[\]]{1,255}$/.test(host)) return `http://${host}`;
    return this.baseUrl;
  }

  private async countObjectsOnDisk(): Promise<void> {
    let n = 0;
    try {
      for (const repo of await readdir(this.repos.reposDir)) {
        const root = join(this.repos.reposDir, repo, 'lfs', 'objects');
        for (const a of await readdir(root).catch(() => [])) {
          for (const b of await readdir(join(root, a)).catch(() => [])) {
            n += (await readdir(join(root, a, b)).catch(() => [])).filter((f) => SHA256_RE.test(f)).length;
          }
        }
      }
      this.lfsObjectCount += n;
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'could not count LFS objects on disk');
    }
  }
}

/** The host name of a URL, as isLoopbackHost compares it; none for no URL or a bad one. */
function hostsOf(url: string | undefined): string[] {
  if (!url) return [];
  try {
    return [new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '')];
  } catch {
    return [];
  }
}
