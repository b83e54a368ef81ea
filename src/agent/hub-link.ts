/**
 * The agent's two conversations with its hub: the event stream it listens
 * to (ref updates trigger passes) and the status reports it sends after
 * every pass. Reports never overlap and the latest always goes out.
 */
import type { Logger } from '../log.ts';
import { redactUrl } from '../util/redact.ts';
import type { AgentStatus } from './agent-types.ts';
import type { Clock } from './clock.ts';
import { EventSubscriber, type ServerSentEvent } from './events.ts';
import { requestErrorMessage } from './net-error.ts';
import type { TriggerSource } from './queue.ts';

/** How long the last report on shutdown may take. */
const STOP_REPORT_TIMEOUT_MS = 3000;
const REPORT_TIMEOUT_MS = 10_000;

export interface HubLinkOptions {
  hub: string;
  registry: string;
  branch: string;
  site: string;
  token: string | undefined;
  fetch: typeof fetch;
  clock: Clock;
  logger: Logger;
  random: () => number;
  eventsBackoffBaseMs?: number;
  eventsBackoffMaxMs?: number;
  /** Start a pass. */
  fire(source: TriggerSource, detail?: string, commit?: string): void;
  /** The document to report. */
  status(): AgentStatus;
  /** Set once the agent stops: no further report rounds. */
  stopSignal: AbortSignal;
}

/** What a report attempt came to (`agent --once` exits on it). */
export interface ReportResult {
  ok: boolean;
  error?: string;
  /** The hub's HTTP status, when it answered. */
  httpStatus?: number;
}

export class HubLink {
  private events: EventSubscriber | undefined;
  private reporting: Promise<void> | undefined;
  private reportAgain = false;
  /** Aborts a report in flight when a newer one supersedes it (the last report on stop). */
  private readonly reportAbort = new AbortController();
  lastReportAt: number | null = null;
  lastReportError: string | null = null;
  lastReport: ReportResult | undefined;
  /** `agent --once`: there is no next pass to report after. */
  oneShot = false;

  constructor(private readonly o: HubLinkOptions) {}

  get connected(): boolean {
    return this.events?.connected ?? false;
  }

  get eventsError(): string | undefined {
    return this.events?.lastError;
  }

  reconnectNow(): void {
    this.events?.reconnectNow();
  }

  startEvents(): void {
    const base = this.o.hub.replace(/\/+$/, '');
    const repo = hubRepoName(this.o.registry, base);
    const url = `${base}/api/v1/events${repo ? `?repo=${encodeURIComponent(repo)}` : ''}`;
    const branchRef = `refs/heads/${this.o.branch}`;
    this.events = new EventSubscriber({
      url,
      token: this.o.token,
      fetch: this.o.fetch,
      clock: this.o.clock,
      logger: this.o.logger,
      random: this.o.random,
      backoffBaseMs: this.o.eventsBackoffBaseMs,
      backoffMaxMs: this.o.eventsBackoffMaxMs,
      onEvent: (e) => this.onHubEvent(e, repo, branchRef),
      onOpen: (reconnected) => {
        this.o.logger.info({ hub: redactUrl(base), repo }, reconnected ? 'hub event stream re-established' : 'subscribed to hub events');
        // Anything pushed while we were away: one pass catches up.
        if (reconnected) this.o.fire('event', 'hub reconnected');
      },
    });
    this.events.start();
  }

  stopEvents(): void {
    this.events?.stop();
  }

  private onHubEvent(e: ServerSentEvent, repo: string | undefined, branchRef: string): void {
    if (e.event === 'resync') {
      this.o.fire('event', 'resync');
      return;
    }
    if (e.event !== 'ref') return;
    let data: { repo?: unknown; ref?: unknown; after?: unknown };
    try {
      data = JSON.parse(e.data) as typeof data;
    } catch {
      return;
    }
    if (repo && data.repo !== repo) return;
    if (data.ref !== branchRef) return;
    // The new tip is only a hint (the pass still fetches the branch from Git); a deletion (zeros) is none.
    const after = typeof data.after === 'string' && /^[0-9a-f]{40}$/.test(data.after) && !/^0+$/.test(data.after) ? data.after : undefined;
    this.o.fire('event', `${String(data.repo)} ${branchRef} ${String(data.after ?? '').slice(0, 12)}`, after);
  }

  /** Send the status to the hub soon; reports never overlap and the latest always goes out. */
  reportSoon(): void {
    if (this.reporting) {
      this.reportAgain = true;
      return;
    }
    this.reporting = (async () => {
      do {
        this.reportAgain = false;
        await this.send();
      } while (this.reportAgain && !this.o.stopSignal.aborted);
    })().finally(() => {
      this.reporting = undefined;
    });
  }

  /** Wait for the report in flight (every pass starts one). */
  async flush(): Promise<void> {
    await this.reporting;
  }

  /** On stop: a report still in flight is superseded by the last one (don't wait out its 10 s). */
  async supersede(): Promise<void> {
    this.reportAbort.abort(new Error('superseded by the last report'));
    await this.flush();
  }

  async send(final = false): Promise<ReportResult> {
    const timeoutMs = final ? STOP_REPORT_TIMEOUT_MS : REPORT_TIMEOUT_MS;
    const url = `${this.o.hub.replace(/\/+$/, '')}/api/v1/sites/${encodeURIComponent(this.o.site)}/status`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.o.token) headers.authorization = `Bearer ${this.o.token}`;
    let httpStatus: number | undefined;
    try {
      const signal = final ? AbortSignal.timeout(timeoutMs) : AbortSignal.any([AbortSignal.timeout(timeoutMs), this.reportAbort.signal]);
      const res = await this.o.fetch(url, { method: 'POST', headers, body: JSON.stringify(this.o.status()), signal });
      httpStatus = res.status;
      const text = await res.text().catch(() => '');
      if (!res.ok) throw new Error(`hub answered ${res.status}${text.trim() ? `: ${text.trim().slice(0, 200)}` : ''}`);
      if (this.lastReportError) {
        this.o.logger.info('status reports reach the hub again');
        this.events?.reconnectNow();
      }
      this.lastReportAt = this.o.clock.now();
      this.lastReportError = null;
      this.lastReport = { ok: true, httpStatus };
    } catch (err) {
      const why = `POST ${redactUrl(url)}: ${requestErrorMessage(err)}`;
      if (this.lastReportError === null || this.oneShot) this.o.logger.warn({ reason: why }, this.oneShot ? 'cannot report status to the hub; the hub will not show this pass' : 'cannot report status to the hub; will report after the next pass');
      this.lastReportError = why;
      this.lastReport = { ok: false, error: why, ...(httpStatus !== undefined ? { httpStatus } : {}) };
    }
    return this.lastReport;
  }
}

/** The hub's name for the registry repo, when the registry lives on that hub (`<hub>/<repo>.git`). */
export function hubRepoName(registry: string, hub: string): string | undefined {
  try {
    const r = new URL(registry);
    const h = new URL(hub);
    if (r.origin !== h.origin) return undefined;
    const prefix = h.pathname.replace(/\/+$/, '');
    const path = r.pathname.startsWith(`${prefix}/`) ? r.pathname.slice(prefix.length + 1) : undefined;
    const m = path ? /^([^/]+?)(?:\.git)?\/?$/.exec(path) : null;
    return m?.[1];
  } catch {
    return undefined;
  }
}
