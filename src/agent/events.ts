/**
 * The hub's event stream (`GET /api/v1/events`, server-sent events): a push
 * to the registry reaches the agent at once instead of at the next schedule.
 * The connection is re-opened with backoff whenever it drops; anything missed
 * meanwhile is caught by the pass run on reconnect and by the schedule.
 */
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { redactUrl } from '../util/redact.ts';
import { requestErrorMessage } from './net-error.ts';
import { Backoff, type Clock, type TimerHandle } from './clock.ts';
import { readEventStream, type ServerSentEvent } from '../util/sse.ts';

// The parser lives in util/ so the hub's mirror (which follows an upstream hub) shares it.
export { SseParser, type ServerSentEvent } from '../util/sse.ts';

export interface EventSubscriberOptions {
  url: string;
  token?: string;
  fetch: typeof fetch;
  clock: Clock;
  logger: Logger;
  random?: () => number;
  onEvent(e: ServerSentEvent): void;
  /** Called on every successful (re)connection; `reconnected` is false the first time. */
  onOpen?(reconnected: boolean): void;
  onClose?(error: string | undefined): void;
  /** No byte for this long (not even a keep-alive comment) means a dead connection. */
  idleTimeoutMs?: number;
  /**
   * A connection must stay open this long (default 30 s) before the backoff
   * starts over: a hub (or proxy) that accepts the stream and drops it at
   * once must not get a reconnect, and a catch-up pass, every half second
   * from every agent.
   */
  stableMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export class EventSubscriber {
  private controller: AbortController | undefined;
  private retryTimer: TimerHandle | undefined;
  private stopped = true;
  private everConnected = false;
  private readonly backoff: Backoff;
  connected = false;
  lastError: string | undefined;
  /** Sent back as Last-Event-ID on reconnect, so the hub can replay what we missed. */
  lastEventId: string | undefined;

  constructor(private readonly opts: EventSubscriberOptions) {
    this.backoff = new Backoff(opts.backoffBaseMs ?? 500, opts.backoffMaxMs ?? 60_000, opts.random);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  /**
   * The hub answers again (a report or a registry fetch got through): re-open
   * the stream now instead of when the backoff (up to a minute) expires.
   * Nothing happens while connected or while a connection attempt runs.
   */
  reconnectNow(): void {
    if (this.stopped || this.retryTimer === undefined) return;
    this.opts.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.opts.clock.clearTimeout(this.retryTimer);
    this.controller?.abort();
  }

  private async connect(): Promise<void> {
    const { opts } = this;
    const controller = new AbortController();
    this.controller = controller;
    let idle: TimerHandle | undefined;
    const idleMs = opts.idleTimeoutMs ?? 75_000;
    const touch = (): void => {
      opts.clock.clearTimeout(idle);
      idle = opts.clock.setTimeout(() => controller.abort(new Error(`no data from the hub for ${idleMs} ms`)), idleMs);
    };
    let error: string | undefined;
    let openedAt = 0;
    try {
      touch();
      const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-cache' };
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
      const res = await opts.fetch(opts.url, { headers, signal: controller.signal });
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`GET ${redactUrl(opts.url)} answered ${res.status}`);
      }
      this.connected = true;
      this.lastError = undefined;
      openedAt = opts.clock.now();
      const reconnected = this.everConnected;
      this.everConnected = true;
      opts.onOpen?.(reconnected);
      await readEventStream(res.body, {
        onEvent: (e) => opts.onEvent(e),
        onId: (id) => { this.lastEventId = id; },
        touch,
        onHandlerError: (err) => opts.logger.warn({ err: errorMessage(err) }, 'event handler failed'),
      });
      error = 'the hub closed the event stream';
    } catch (err) {
      error = controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason.message : requestErrorMessage(err);
    } finally {
      opts.clock.clearTimeout(idle);
    }
    const wasConnected = this.connected;
    this.connected = false;
    if (this.stopped) return;
    if (wasConnected && opts.clock.now() - openedAt >= (opts.stableMs ?? 30_000)) this.backoff.reset();
    // Say it once per kind of failure (a refused token, the hub down), not once per retry.
    const news = wasConnected || error !== this.lastError;
    this.lastError = error;
    if (wasConnected) opts.onClose?.(error);
    const delay = this.backoff.next();
    opts.logger[news ? 'warn' : 'debug']({ hub: redactUrl(opts.url), retryInMs: delay, reason: error }, wasConnected ? 'hub event stream lost; reconnecting' : 'cannot subscribe to hub events; retrying');
    this.retryTimer = opts.clock.setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.stopped) void this.connect();
    }, delay);
  }
}
