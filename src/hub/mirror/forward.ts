/**
 * Local agents' status reports, forwarded to the upstream hub so its fleet
 * view shows the sites behind the mirror. The mirror keeps each site's last
 * report itself (its own `sites/` store, as any hub does); what is owed
 * upstream is only the list of sites whose latest report has not gone out,
 * `<data>/mirror/outbox.json`, so a WAN outage or a mirror restart loses
 * nothing but intermediate reports (the upstream, like every hub, keeps only
 * a site's last one).
 *
 * Unreachable upstream, 5xx, 408, 429: kept, retried with backoff (and at
 * once when the upstream answers again). Any other refusal (a 403 for a site
 * the mirror's token may not report, a 422): dropped with a warning, since
 * sending the same report again would be refused again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../log.ts';
import { writeFileAtomic } from '../../util/fsutil.ts';
import type { SitesStatus } from '../sites-status.ts';
import type { Upstream } from './upstream.ts';

const REPORT_TIMEOUT_MS = 15_000;
const PARALLEL = 4;
/** Of an upstream's answer we print 200 characters: reading more would let it fill our memory. */
const ANSWER_BYTES = 4096;

export interface ForwarderOptions {
  upstream: Upstream;
  sites: SitesStatus;
  /** `<data>/mirror`. */
  dir: string;
  /** Named in each forwarded report (`via.mirror`). */
  mirrorName: string;
  logger: Logger;
  /** When the mirror last completed a sync with the upstream (null: never). */
  lastSyncAt: () => Date | null;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  onForwarded?: () => void;
  onDropped?: () => void;
}

export class ReportForwarder {
  /** Site → the receivedAt of the report owed upstream. */
  private readonly pending = new Map<string, string>();
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;
  private saving: Promise<void> = Promise.resolve();
  lastError: string | null = null;
  private readonly file: string;

  constructor(private readonly o: ForwarderOptions) {
    this.file = join(o.dir, 'outbox.json');
  }

  get queued(): number {
    return this.pending.size;
  }

  /** Reports owed from an earlier run. */
  async load(): Promise<void> {
    try {
      const doc = JSON.parse(await readFile(this.file, 'utf8')) as { pending?: Record<string, unknown> };
      for (const [site, at] of Object.entries(doc.pending ?? {})) if (typeof at === 'string' && this.o.sites.get(site) && !this.pending.has(site)) this.pending.set(site, at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.logger.warn({ file: this.file, err: (err as Error).message }, 'mirror outbox unreadable; reports owed before the restart go up with the next report of each site');
    }
    if (this.pending.size > 0) this.o.logger.info({ sites: this.pending.size }, 'status reports owed to the upstream from before the restart');
  }

  /** A local agent reported: its report is owed upstream. */
  enqueue(site: string, receivedAt: string): void {
    this.pending.set(site, receivedAt);
    this.save();
    this.kick();
  }

  /** The upstream answers again: send now instead of when the backoff expires. */
  retryNow(): void {
    if (this.pending.size === 0 || this.closed) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.kick();
  }

  /** Resolves when nothing is being sent (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
    await this.saving;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
    await this.saving;
  }

  private kick(): void {
    if (this.closed || this.timer) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.round();
      } while (this.again && !this.closed && !this.timer);
    })().finally(() => {
      this.running = undefined;
    });
  }

  /** Send every owed report; on a retryable failure stop and schedule the next round. */
  private async round(): Promise<void> {
    const todo = [...this.pending.entries()];
    let retryable: string | null = null;
    for (let i = 0; i < todo.length && retryable === null && !this.closed; i += PARALLEL) {
      const results = await Promise.all(todo.slice(i, i + PARALLEL).map(([site, at]) => this.send(site, at)));
      retryable = results.find((r) => r !== null) ?? null;
    }
    this.save();
    if (retryable === null) {
      if (this.lastError) this.o.logger.info('status reports reach the upstream again');
      this.lastError = null;
      this.attempt = 0;
      return;
    }
    if (this.lastError === null) this.o.logger.warn({ reason: retryable, queued: this.pending.size }, 'cannot forward status reports to the upstream; they are kept and sent when it answers');
    this.lastError = retryable;
    const base = this.o.backoffBaseMs ?? 1000;
    const ceiling = Math.min(this.o.backoffMaxMs ?? 60_000, base * 2 ** Math.min(this.attempt, 20));
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.kick();
    }, Math.round(ceiling / 2 + (Math.random() * ceiling) / 2));
    this.timer.unref();
  }

  /** null when done with this site (sent, or refused for good); else why it must be retried. */
  private async send(site: string, at: string): Promise<string | null> {
    const rec = this.o.sites.get(site);
    if (!rec) {
      this.pending.delete(site);
      return null;
    }
    const up = this.o.upstream;
    const url = `${up.base}/api/v1/sites/${encodeURIComponent(site)}/status`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (up.token) headers.authorization = `Bearer ${up.token}`;
    // A report that waited in the queue is that much staler than when the agent sent it.
    const waitedS = Math.max(0, Math.round((Date.now() - Date.parse(rec.receivedAt)) / 1000));
    const synced = this.o.lastSyncAt();
    const body = { ...rec.report, via: { mirror: this.o.mirrorName, receivedAt: rec.receivedAt, lastSyncAt: synced?.toISOString() ?? null } } as Record<string, unknown>;
    // Staleness upstream is against the upstream registry: the agent's own (its contact with the
    // mirror, plus the time its report waited here), or the mirror's, whichever is older.
    if (typeof body.stalenessSeconds === 'number') {
      const mirrorS = synced ? Math.max(0, Math.round((Date.now() - synced.getTime()) / 1000)) : 0;
      body.stalenessSeconds = Math.max(body.stalenessSeconds + waitedS, mirrorS);
    }
    let status: number;
    let text = '';
    try {
      const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(REPORT_TIMEOUT_MS) });
      status = res.status;
      text = await answerStart(res, ANSWER_BYTES);
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      return `POST ${url}: ${(err as Error).message === 'fetch failed' ? `cannot reach the upstream${cause ? ` (${cause})` : ''}` : (err as Error).message}`;
    }
    if (status >= 200 && status < 300) {
      // A newer report that arrived meanwhile is still owed.
      if (this.pending.get(site) === at) this.pending.delete(site);
      this.o.onForwarded?.();
      return null;
    }
    const why = `POST ${url} answered ${status}${text.trim() ? `: ${text.trim().slice(0, 200)}` : ''}`;
    if (status >= 500 || status === 408 || status === 429) return why;
    if (this.pending.get(site) === at) this.pending.delete(site);
    this.o.onDropped?.();
    this.o.logger.warn({ site, status, reason: why }, 'the upstream refused a forwarded status report; it is not sent again (check that the mirror\'s --token-file may report for this site)');
    return null;
  }

  private save(): void {
    const doc = `${JSON.stringify({ pending: Object.fromEntries(this.pending) }, null, 1)}\n`;
    this.saving = this.saving
      .then(() => writeFileAtomic(this.file, doc, 0o600))
      .catch((err: Error) => this.o.logger.warn({ file: this.file, err: err.message }, 'cannot write the mirror outbox'));
  }
}

/** The first `max` bytes of a response's body (as text); the rest is not read, the connection is dropped. */
async function answerStart(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    while (n < max) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
      n += value.length;
    }
  } catch {
    // A body cut short: what came is enough for a message.
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(parts).subarray(0, max).toString('utf8');
}
