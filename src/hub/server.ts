/**
 * The hub's HTTP front: routes a request and hands it to Git (routes-git),
 * the LFS API (routes-lfs) or the hub's own API (routes-api), each of which
 * asks the gate who is asking and whether they may. Errors come back in the
 * format the caller's client understands: LFS JSON for LFS, plain text for
 * Git, JSON for the API.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../log.ts';
import { SHA256_RE } from '../util/hash.ts';
import { listenError } from '../util/listen-error.ts';
import { ActionTokens, type TokenTable } from './auth.ts';
import { HistoryCache } from './dashboard/index.ts';
import { EventHub } from './events.ts';
import { registerSiteMetrics } from './fleet-metrics.ts';
import { Gate } from './gate.ts';
import { HttpError, JSON_TYPE, LFS_TYPE, sendJson, sendText } from './http-util.ts';
import type { HubLimits } from './limits.ts';
import { Metrics } from './metrics.ts';
import { RepoStore, repoNameProblem } from './repos.ts';
import { BASIC_CHALLENGE, parseTarget, type RequestContext, type RequestTarget, type Route } from './request.ts';
import { HubRollouts } from './rollouts.ts';
import { ApiRoutes } from './routes-api.ts';
import { GitRoutes } from './routes-git.ts';
import { LfsRoutes } from './routes-lfs.ts';
import { SitesStatus } from './sites-status.ts';
import { FsObjects } from './storage/fs.ts';
import type { ObjectStorage } from './storage/index.ts';

export { parseTarget } from './request.ts';

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
  /** Where LFS objects live (default: the filesystem under data, storage/fs.ts). */
  objects?: ObjectStorage;
  /** `serve --mirror`: the upstream this hub mirrors; pushes and uploads are refused, naming it. */
  readOnlyUpstream?: string;
}

export class HubServer {
  readonly server: Server;
  readonly repos: RepoStore;
  readonly objects: ObjectStorage;
  readonly events: EventHub;
  readonly sites: SitesStatus;
  readonly metrics = new Metrics();
  readonly rollouts: HubRollouts | undefined;
  private readonly actions = new ActionTokens();
  private readonly inflight = new Set<ServerResponse>();
  private readonly git: GitRoutes;
  private readonly lfs: LfsRoutes;
  private readonly api: ApiRoutes;
  private baseUrl = '';
  /** Replaced when the tokens file changes (setTokens). */
  private tokens: TokenTable | null;
  private readonly history: HistoryCache;
  private readonly sweepTimer: NodeJS.Timeout;
  /** host:port as the socket is bound (0.0.0.0:9080 when listening on all addresses). */
  boundAddress = '';
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
    this.objects = opts.objects ?? new FsObjects(this.repos);
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
    const hasTokens = (): boolean => this.tokens !== null;
    const publicBase = (req: IncomingMessage): string => this.publicBase(req);
    const countAuthFailure = (reason: string): void => this.countAuthFailures({ reason });
    const gate = new Gate({ tokens: () => this.tokens, actions: this.actions, publicHosts: this.publicHosts, logger: opts.logger, countAuthFailure, readOnlyUpstream: opts.readOnlyUpstream });
    this.git = new GitRoutes({ repos: this.repos, events: this.events, gate, limits: opts.limits, logger: opts.logger, hasTokens, countRefEvent: () => this.countRefEvents() });
    this.lfs = new LfsRoutes({
      repos: this.repos, objects: this.objects, gate, actions: this.actions, limits: opts.limits, logger: opts.logger, hasTokens, publicBase,
      onStored: (size) => {
        this.lfsObjectCount += 1;
        this.countStored();
        this.countStoredBytes({}, size);
      },
      countRejected: (reason) => this.countRejected({ reason }),
    });
    this.api = new ApiRoutes({ gate, events: this.events, sites: this.sites, rollouts: this.rollouts, history: this.history, metrics: m, limits: opts.limits, hasTokens, publicBase, countAuthFailure });
    m.gauge('modelsync_hub_git_processes', 'git http-backend processes running.', () => this.git.slots.inUse);
    m.gauge('modelsync_hub_git_queued_requests', 'Git requests waiting for a process slot.', () => this.git.slots.queued);
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
    this.boundAddress = `${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`;
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
      this.objects.close?.();
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

    if (path === '/') return only({ name: 'index', family: 'plain', handle: (c) => this.api.index(c) }, 'GET', 'HEAD');
    if (path === '/healthz') return only({ name: 'healthz', family: 'api', handle: (c) => this.api.healthz(c) }, 'GET', 'HEAD');
    if (path === '/metrics') return only({ name: 'metrics', family: 'plain', handle: (c) => this.api.metricsPage(c) }, 'GET');
    if (path === '/api/v1/events') return only({ name: 'events', family: 'api', handle: (c) => this.api.eventStream(c) }, 'GET');
    if (path === '/api/v1/sites') return only({ name: 'sites', family: 'api', handle: (c) => this.api.listSites(c) }, 'GET');
    if (path === '/api/v1/rollouts') return only({ name: 'rollouts', family: 'api', handle: (c) => this.api.listRollouts(c) }, 'GET');
    const site = /^\/api\/v1\/sites\/([^/]+)\/status$/.exec(path);
    if (site) return only({ name: 'site-status', family: 'api', handle: (c) => this.api.reportSite(c, site[1]!) }, 'POST');
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
    if (rest === 'info/refs') return only({ name: 'git-info-refs', family: 'git', repo, handle: (c) => this.git.handle(c, repo, rest) }, 'GET');
    if (rest === 'git-upload-pack' || rest === 'git-receive-pack') return only({ name: rest, family: 'git', repo, handle: (c) => this.git.handle(c, repo, rest) }, 'POST');
    if (!isLfs) return { ...notFound, family: 'git', name: 'git-other' };

    const lfs = rest.slice('info/lfs/'.length);
    if (lfs === 'objects/batch') return only({ name: 'lfs-batch', family: 'lfs', repo, handle: (c) => this.lfs.batch(c, repo) }, 'POST');
    if (lfs === 'locks/verify') return only({ name: 'lfs-locks', family: 'lfs', repo, handle: (c) => this.lfs.locksVerify(c) }, 'POST');
    if (lfs === 'locks') return only({ name: 'lfs-locks', family: 'lfs', repo, handle: (c) => this.lfs.locksList(c) }, 'GET');
    const obj = /^objects\/([^/]*)(\/verify)?$/.exec(lfs);
    if (obj) {
      const oid = obj[1]!;
      const bad = (name: string): Route => ({ name, family: 'lfs', repo, handle: async () => { throw new HttpError(422, 'InvalidOid', 'invalid oid: must be 64 lowercase hex characters'); } });
      if (obj[2]) return SHA256_RE.test(oid) ? only({ name: 'lfs-verify', family: 'lfs', repo, handle: (c) => this.lfs.verify(c, repo, oid) }, 'POST') : bad('lfs-verify');
      if (!SHA256_RE.test(oid)) return bad(method === 'PUT' ? 'lfs-upload' : 'lfs-download');
      if (method === 'PUT') return { name: 'lfs-upload', family: 'lfs', repo, handle: (c) => this.lfs.upload(c, repo, oid) };
      return only({ name: 'lfs-download', family: 'lfs', repo, handle: (c) => this.lfs.download(c, repo, oid) }, 'GET', 'HEAD');
    }
    return { ...notFound, family: 'lfs', name: 'lfs-other' };
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
    try {
      this.lfsObjectCount += await this.objects.count();
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'could not count LFS objects');
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
