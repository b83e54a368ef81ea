/**
 * `serve --mirror <upstream registry URL>`: a read-only hub on a site's
 * datasink. It follows the upstream's event stream (a schedule as the safety
 * net), fetches Git into its own bare repo and the LFS objects the fetched
 * commits name into its own object store, each once and verified, and only
 * then moves the refs local agents see and re-emits the event to them, so an
 * agent woken by it finds everything in place. Local agents' status reports
 * are kept here and forwarded upstream (queued while the WAN is down).
 *
 * One sync at a time; a trigger during a sync queues one more, which covers
 * every trigger meanwhile. A sync that could not finish (the upstream down,
 * an object that failed verification) moves no ref and is retried with
 * backoff; local agents are served what the mirror already has.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { errorMessage, type ModelsyncError } from '../../errors.ts';
import type { LfsObject } from '../../lfs/types.ts';
import type { Logger } from '../../log.ts';
import type { EventHub } from '../events.ts';
import type { Metrics } from '../metrics.ts';
import type { RefChange, RepoStore } from '../repos.ts';
import { ZERO_OID } from '../repos.ts';
import type { SitesStatus } from '../sites-status.ts';
import { UpstreamFollower } from './follow.ts';
import { ReportForwarder } from './forward.ts';
import { applyChanges, configureMirrorRepo, fetchUpstream, pendingChanges } from './git-mirror.ts';
import { lfsObjectsAt } from './lfs-scan.ts';
import { MirrorObjects } from './objects.ts';
import type { Upstream } from './upstream.ts';

export { parseUpstream, readTokenFile, type Upstream } from './upstream.ts';

export interface MirrorTuning {
  /** Seconds between scheduled syncs, the safety net under events (default 60). */
  intervalS?: number;
  /** Retry of a failed sync: first delay and ceiling (default 1 s … 60 s). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Event stream reconnects (default 0.5 s … 30 s). */
  eventsBackoffBaseMs?: number;
  eventsBackoffMaxMs?: number;
  /** Report forwarding retries (default 1 s … 60 s). */
  reportsBackoffBaseMs?: number;
  reportsBackoffMaxMs?: number;
  /** LFS client retries (tests keep them short). */
  lfsRetry?: ConstructorParameters<typeof MirrorObjects>[0]['retry'];
  /** Named in forwarded reports (default the host name). */
  name?: string;
}

export interface MirrorDeps {
  repos: RepoStore;
  events: EventHub;
  sites: SitesStatus;
  metrics: Metrics;
  logger: Logger;
  dataDir: string;
}

export interface MirrorStatus {
  upstream: string;
  /** The upstream's event stream is open. */
  following: boolean;
  lastSyncAt: string | null;
  lastError: string | null;
  /** Objects the last sync could not fetch (verification failed, network), which hold their refs back. */
  failedObjects: string[];
  reportsQueued: number;
  reportsError: string | null;
}

export class Mirror {
  readonly upstream: Upstream;
  private readonly follower: UpstreamFollower;
  private readonly forwarder: ReportForwarder;
  private readonly objects: MirrorObjects;
  private readonly gitDir: string;
  private schedule: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAttempt = 0;
  private syncing: Promise<void> | undefined;
  private syncAgain = false;
  private readonly abort = new AbortController();
  private closed = false;
  /** LFS objects per commit already scanned (a tip is scanned once). */
  private readonly scanned = new Map<string, LfsObject[]>();
  lastSyncAt: Date | null = null;
  lastError: string | null = null;
  failedObjects: string[] = [];
  private readonly count: {
    syncs: (l?: Record<string, string>) => void;
    objects: (l?: Record<string, string>, by?: number) => void;
    bytes: (l?: Record<string, string>, by?: number) => void;
    rejected: (l?: Record<string, string>, by?: number) => void;
    forwarded: (l?: Record<string, string>, by?: number) => void;
  };

  constructor(
    upstream: Upstream,
    private readonly d: MirrorDeps,
    private readonly t: MirrorTuning = {},
  ) {
    this.upstream = upstream;
    this.gitDir = d.repos.gitDir(upstream.repo);
    const dir = join(d.dataDir, 'mirror');
    this.objects = new MirrorObjects({ upstream, objectPath: (oid) => d.repos.objectPath(upstream.repo, oid), tmpDir: join(dir, 'tmp'), logger: d.logger, retry: t.lfsRetry });
    const m = d.metrics;
    this.count = {
      syncs: m.counter('modelsync_mirror_syncs_total', 'Mirror syncs with the upstream, by result (ok, failed).'),
      objects: m.counter('modelsync_mirror_objects_fetched_total', 'LFS objects fetched from the upstream and verified.'),
      bytes: m.counter('modelsync_mirror_fetched_bytes_total', 'LFS bytes fetched from the upstream.'),
      rejected: m.counter('modelsync_mirror_objects_rejected_total', 'LFS objects from the upstream refused (checksum mismatch, network) and not stored.'),
      forwarded: m.counter('modelsync_mirror_reports_total', 'Local status reports sent upstream, by result (forwarded, dropped).'),
    };
    m.gauge('modelsync_mirror_upstream_connected', 'Whether the upstream\'s event stream is open (1) or not (0).', () => (this.follower.connected ? 1 : 0));
    m.gauge('modelsync_mirror_last_sync_timestamp_seconds', 'When the mirror last completed a sync with the upstream (Unix time; 0: never).', () => (this.lastSyncAt ? Math.floor(this.lastSyncAt.getTime() / 1000) : 0));
    m.gauge('modelsync_mirror_reports_queued', 'Local sites whose latest status report is not upstream yet.', () => this.forwarder.queued);
    this.follower = new UpstreamFollower({
      url: `${upstream.base}/api/v1/events?repo=${encodeURIComponent(upstream.repo)}`,
      token: upstream.token,
      logger: d.logger,
      backoffBaseMs: t.eventsBackoffBaseMs,
      backoffMaxMs: t.eventsBackoffMaxMs,
      onOpen: () => {
        // Whatever happened while we were not listening: one sync catches up.
        this.requestSync('events connected');
        this.forwarder.retryNow();
      },
      onEvent: (e) => {
        if (e.event === 'resync') this.requestSync('upstream resync');
        else if (e.event === 'ref') this.requestSync('upstream ref event');
      },
    });
    this.forwarder = new ReportForwarder({
      upstream,
      sites: d.sites,
      dir,
      mirrorName: t.name ?? hostname(),
      logger: d.logger,
      lastSyncAt: () => this.lastSyncAt,
      backoffBaseMs: t.reportsBackoffBaseMs,
      backoffMaxMs: t.reportsBackoffMaxMs,
      onForwarded: () => this.count.forwarded({ result: 'forwarded' }),
      onDropped: () => this.count.forwarded({ result: 'dropped' }),
    });
    this.d.sites.on('report', (r) => this.forwarder.enqueue(r.site, r.receivedAt));
  }

  async start(): Promise<void> {
    if (await this.d.repos.ensure(this.upstream.repo)) this.d.logger.info({ repo: this.upstream.repo }, 'mirror repository created');
    await configureMirrorRepo(this.gitDir);
    await this.forwarder.load();
    this.forwarder.retryNow();
    this.follower.start();
    const every = Math.max(1, this.t.intervalS ?? 60) * 1000;
    this.schedule = setInterval(() => this.requestSync('schedule'), every);
    this.schedule.unref();
    this.requestSync('start');
  }

  status(): MirrorStatus {
    return {
      upstream: this.upstream.description,
      following: this.follower.connected,
      lastSyncAt: this.lastSyncAt?.toISOString() ?? null,
      lastError: this.lastError,
      failedObjects: this.failedObjects,
      reportsQueued: this.forwarder.queued,
      reportsError: this.forwarder.lastError,
    };
  }

  /** Start a sync now (or right after the one running). */
  requestSync(reason: string): void {
    if (this.closed) return;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = (async () => {
      let why = reason;
      do {
        this.syncAgain = false;
        await this.syncOnce(why);
        why = 'queued trigger';
      } while (this.syncAgain && !this.closed);
    })().finally(() => {
      this.syncing = undefined;
    });
  }

  /** Resolves when no sync runs or is queued (tests). */
  async idle(): Promise<void> {
    while (this.syncing) await this.syncing;
  }

  /** Resolves when no report is being forwarded (tests). */
  async reportsIdle(): Promise<void> {
    await this.forwarder.idle();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.follower.stop();
    clearInterval(this.schedule);
    clearTimeout(this.retryTimer);
    this.abort.abort(new Error('mirror stopping'));
    await this.syncing?.catch(() => {});
    await this.forwarder.close();
  }

  private async syncOnce(reason: string): Promise<void> {
    const started = Date.now();
    try {
      await fetchUpstream(this.gitDir, this.upstream, this.abort.signal);
      const changes = await pendingChanges(this.gitDir);
      const ready = await this.bringObjects(changes);
      await this.d.repos.withLock(this.upstream.repo, async () => {
        await applyChanges(this.gitDir, ready);
        // A branch that is new here (the first sync, a branch created upstream): HEAD must name one that exists.
        if (ready.some((c) => c.before === ZERO_OID || c.after === ZERO_OID)) await this.d.repos.repairHead(this.upstream.repo, await this.d.repos.refs(this.upstream.repo));
      });
      // Only now, with the commit's objects in place, are local agents told.
      const at = new Date().toISOString();
      for (const c of ready) {
        const id = this.d.events.publish({ repo: this.upstream.repo, ref: c.ref, before: c.before, after: c.after, at });
        this.d.logger.info({ repo: this.upstream.repo, ref: c.ref, before: c.before, after: c.after, id, ms: Date.now() - started }, 'mirror ref updated');
      }
      const held = changes.length - ready.length;
      if (held > 0) throw new Error(`${held} ref(s) held back: ${this.failedObjects.length} LFS object(s) could not be fetched and verified (${this.failedObjects.slice(0, 3).map((o) => o.slice(0, 12)).join(', ')}${this.failedObjects.length > 3 ? ', …' : ''})`);
      if (this.lastError) this.d.logger.info({ upstream: this.upstream.description }, 'mirror in sync with the upstream again');
      this.lastError = null;
      this.lastSyncAt = new Date();
      this.retryAttempt = 0;
      this.count.syncs({ result: 'ok' });
      this.d.logger.debug({ reason, ms: Date.now() - started, refs: ready.length }, 'mirror sync done');
      // The upstream answers: reports owed go now.
      this.forwarder.retryNow();
    } catch (err) {
      if (this.closed) return;
      const why = errorMessage(err);
      this.count.syncs({ result: 'failed' });
      const base = this.t.retryBaseMs ?? 1000;
      const ceiling = Math.min(this.t.retryMaxMs ?? 60_000, base * 2 ** Math.min(this.retryAttempt, 20));
      this.retryAttempt += 1;
      const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
      this.d.logger[why !== this.lastError ? 'warn' : 'debug']({ upstream: this.upstream.description, reason, err: why, retryInMs: delay }, 'mirror sync failed; local agents are served what the mirror has');
      this.lastError = why;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.requestSync('retry');
      }, delay);
      this.retryTimer.unref();
    }
  }

  /**
   * Fetch what the changed refs' commits need; returns the changes whose
   * every object is now in place (or absent upstream too, where local agents
   * will meet the same 404 they would meet there).
   */
  private async bringObjects(changes: readonly RefChange[]): Promise<RefChange[]> {
    const byRef = new Map<string, LfsObject[]>();
    const all = new Map<string, LfsObject>();
    for (const c of changes) {
      if (c.after === ZERO_OID) continue;
      let objs = this.scanned.get(c.after);
      if (!objs) {
        objs = await lfsObjectsAt(this.gitDir, c.after);
        if (this.scanned.size > 64) this.scanned.clear();
        this.scanned.set(c.after, objs);
      }
      byRef.set(c.ref, objs);
      for (const o of objs) all.set(o.oid, o);
    }
    const missing = await this.objects.missing([...all.values()]);
    const result = await this.objects.fetch(missing, this.abort.signal);
    this.count.objects({}, result.fetched.length);
    this.count.bytes({}, result.bytes);
    if (result.fetched.length) this.d.logger.info({ objects: result.fetched.length, bytes: result.bytes }, 'mirror fetched LFS objects from the upstream');
    for (const a of result.absent) this.d.logger.warn({ oid: a.oid, size: a.size }, 'the upstream does not have an LFS object its registry names; local agents will not find it either');
    const failed = new Set(result.failed.map((f) => f.obj.oid));
    for (const f of result.failed) this.logRejected(f.obj, f.error);
    this.count.rejected({}, result.failed.length);
    this.failedObjects = [...failed];
    return changes.filter((c) => !(byRef.get(c.ref) ?? []).some((o) => failed.has(o.oid)));
  }

  private logRejected(obj: LfsObject, error: ModelsyncError): void {
    this.d.logger.error({ oid: obj.oid, size: obj.size, code: error.code, err: error.message }, error.code === 'ChecksumError'
      ? 'the upstream sent an LFS object that does not match its sha256; it is not stored and not served, and the commits that need it are held back'
      : 'could not fetch an LFS object from the upstream; the commits that need it are held back until a later sync');
  }
}
