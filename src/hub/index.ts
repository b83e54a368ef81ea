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
import { HubServer } from './server.ts';
import { Notifier, loadNotifyFile } from './notify/index.ts';
import type { SitesStatus } from './sites-status.ts';
import { watchTokensFile } from './tokens-watch.ts';

export type { RefEvent } from './events.ts';
export type { HubLimits } from './limits.ts';
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
  const server = new HubServer({
    data,
    tokens,
    logger,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    publicUrl: opts.publicUrl,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    rolloutIntervalMs: (opts.rolloutIntervalS ?? 10) * 1000,
    rolloutNow: opts.rolloutNow,
    staleFactor: notify?.staleAfter,
    sweepMs: opts.sweepMs,
  });
  const url = await server.listen(host, port);
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
    reloadTokens: async () => watch?.reload(),
    notificationsIdle: async () => notifier?.idle(),
    close: async () => {
      watch?.close();
      notifier?.close();
      await server.close();
    },
  };
}
