/**
 * The hub (`modelsync serve`) as a library: tests, the demo and the CLI all
 * start it through startHub.
 */
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';
import { loadTokensFile } from './auth.ts';
import type { EventHub } from './events.ts';
import { fdLimitProblem, openFileLimit } from './fd-limit.ts';
import { DEFAULT_LIMITS, type HubLimits } from './limits.ts';
import type { Metrics } from './metrics.ts';
import { Mirror, parseUpstream, readTokenFile, type MirrorTuning } from './mirror/index.ts';
import { HubServer } from './server.ts';
import { Notifier, loadNotifyFile } from './notify/index.ts';
import type { SitesStatus } from './sites-status.ts';
import { parseObjectsSpec } from './storage/index.ts';
import { openObjectStorage, type S3Flags } from './storage/open.ts';
import { watchTokensFile } from './tokens-watch.ts';

export type { RefEvent } from './events.ts';
export type { HubLimits } from './limits.ts';
export type { S3Flags } from './storage/open.ts';
export type { Mirror, MirrorStatus, MirrorTuning } from './mirror/index.ts';
export { ZERO_OID, repoNameProblem } from './repos.ts';

export interface HubOptions {
  /** Where repos/, tmp/ and sites/ live. */
  data: string;
  /** `host:port`; port 0 picks a free one. Default 127.0.0.1:9080. */
  listen?: string;
  /** tokens.yaml; without one only loopback peers are served. */
  tokensFile?: string;
  logger?: Logger;
  /** SSE heartbeat period (default 15 s). */
  heartbeatMs?: number;
  /** Base URL clients use (behind a proxy); LFS hrefs are built from it. */
  publicUrl?: string;
  limits?: Partial<HubLimits>;
  /** Seconds between rounds of the rollout controller over the hub's repos; 0 turns it off (default 10). */
  rolloutIntervalS?: number;
  /** The rollout controller's clock (tests). */
  rolloutNow?: () => Date;
  /** notify.yaml: webhooks for degraded, recovered, conflict, stale and rollout events. */
  notifyFile?: string;
  /** Delivery tuning for tests (backoff, attempts). */
  notifyDelivery?: ConstructorParameters<typeof Notifier>[1]['delivery'];
  /** How often silent sites are checked for staleness (default 30 s). */
  sweepMs?: number;
  /** `--objects`: "fs" (default, under data) or `s3://bucket[/prefix]`. */
  objects?: string;
  /** How to reach the bucket of an s3:// `objects` (the AWS SDK's own configuration fills in the rest). */
  s3?: S3Flags;
  /**
   * `serve --mirror`: run as a read-only mirror of this upstream registry URL
   * (`https://hub.example/registry.git`), authenticating there with the token
   * in `tokenFile` (or the URL's user info). See docs/mirror.md.
   */
  mirror?: { upstream: string; tokenFile?: string } & MirrorTuning;
}

export interface Hub {
  /** http://<host>:<port> as bound (127.0.0.1 when listening on all addresses). */
  url: string;
  /** host:port as bound: `0.0.0.0:9080` for all IPv4 addresses, unlike url. */
  listen: string;
  /** `on('ref', (e) => …)` for every ref a push changed. */
  events: EventHub;
  metrics: Metrics;
  sites: SitesStatus;
  dataDir: string;
  /** Re-read the tokens file now (it is also watched). */
  reloadTokens(): Promise<void>;
  /** Set with `mirror`: the sync with the upstream and the report forwarding. */
  mirror?: Mirror;
  /** Resolves when queued notifications are delivered or given up (tests). */
  notificationsIdle(): Promise<void>;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen must be host:port (e.g. 127.0.0.1:9080, [::1]:9080, 0.0.0.0:9080), got ${JSON.stringify(listen)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function startHub(opts: HubOptions): Promise<Hub> {
  const logger = opts.logger ?? silentLogger;
  const { host, port } = parseListen(opts.listen ?? '127.0.0.1:9080');
  if (opts.publicUrl !== undefined && !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(opts.publicUrl)) {
    throw new UsageError(`--public-url must be an http(s) URL, got ${JSON.stringify(opts.publicUrl)}`);
  }
  const tokens = opts.tokensFile ? await loadTokensFile(opts.tokensFile) : null;
  const notify = opts.notifyFile ? await loadNotifyFile(opts.notifyFile) : null;
  const data = resolve(opts.data);
  if (opts.mirror && opts.objects !== undefined && opts.objects !== 'fs') {
    throw new UsageError('--mirror keeps the objects it mirrors on its own disk under --data; --objects s3:// is for the upstream hub');
  }
  const objects = await openObjectStorage(parseObjectsSpec(opts.objects), { logger, s3: opts.s3 });
  const upstream = opts.mirror ? parseUpstream(opts.mirror.upstream, opts.mirror.tokenFile ? await readTokenFile(opts.mirror.tokenFile) : undefined) : undefined;
  const server = new HubServer({
    objects,
    data,
    tokens,
    logger,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    publicUrl: opts.publicUrl,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    // A mirror's registry is the upstream's: its controller commits there, never here.
    rolloutIntervalMs: upstream ? 0 : (opts.rolloutIntervalS ?? 10) * 1000,
    rolloutNow: opts.rolloutNow,
    staleFactor: notify?.staleAfter,
    sweepMs: opts.sweepMs,
    readOnlyUpstream: upstream?.description,
  });
  // Made before the socket opens, so no local report slips past its forwarding.
  const mirror = upstream ? new Mirror(upstream, { repos: server.repos, events: server.events, sites: server.sites, metrics: server.metrics, logger, dataDir: data }, opts.mirror) : undefined;
  let url: string;
  try {
    url = await server.listen(host, port);
  } catch (err) {
    objects?.close?.();
    throw err;
  }
  logger.info({ objects: server.objects.description }, 'LFS objects');
  try {
    await mirror?.start();
  } catch (err) {
    await server.close();
    throw err;
  }
  if (upstream) logger.info({ upstream: upstream.description, repo: upstream.repo, authenticated: upstream.token !== undefined }, 'mirroring the upstream (read-only)');
  const fds = fdLimitProblem(openFileLimit(), server.server.maxConnections);
  if (fds) logger.warn(fds);
  const watch = opts.tokensFile ? watchTokensFile(opts.tokensFile, { logger, onChange: (t) => server.setTokens(t) }) : null;
  const notifier = notify
    ? new Notifier(notify, { sites: server.sites, events: server.events, hubUrl: () => opts.publicUrl ?? url, logger, metrics: server.metrics, gitDir: (r) => server.repos.gitDir(r), delivery: opts.notifyDelivery })
    : null;
  if (notify) logger.info({ webhooks: notify.webhooks.length }, 'notifications on');
  if (tokens) logger.info({ url, data, tokens: tokens.size }, 'hub listening');
  else {
    logger.warn({ url, data }, 'hub listening WITHOUT a tokens file: only loopback clients are served (use --tokens to serve the network)');
    // --public-url means clients reach the hub through something else, most
    // often a reverse proxy on this host, whose requests come from loopback:
    // the "loopback only" guard then lets the whole network in as admin.
    // Refusing would break a proxy-fronted demo on one machine; say it loudly.
    if (opts.publicUrl) {
      logger.warn(
        { publicUrl: opts.publicUrl },
        'DANGER: --public-url without --tokens: a reverse proxy on this host connects from loopback, so EVERY client it forwards is served with ADMIN rights (push, create repositories, read all status); use --tokens behind a proxy',
      );
    }
  }
  return {
    url,
    listen: server.boundAddress,
    events: server.events,
    metrics: server.metrics,
    sites: server.sites,
    dataDir: data,
    mirror,
    reloadTokens: async () => watch?.reload(),
    notificationsIdle: async () => notifier?.idle(),
    close: async () => {
      watch?.close();
      notifier?.close();
      // The server first: a report accepted while it drains is still queued for the upstream.
      await server.close();
      await mirror?.close();
    },
  };
}
