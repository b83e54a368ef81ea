/**
 * Following the upstream hub's event stream (`GET <base>/api/v1/events`):
 * re-opened with jittered backoff whenever it drops, resuming with
 * `Last-Event-ID` so the upstream replays what we missed (or says `resync`).
 * A stream silent past the upstream's heartbeat counts as dropped. Events
 * only ever start a sync: the mirror always reads the truth from Git.
 */
import type { Logger } from '../../log.ts';
import { redactUrl } from '../../util/redact.ts';
import { readEventStream, type ServerSentEvent } from '../../util/sse.ts';

export interface FollowerOptions {
  url: string;
  token: string | undefined;
  logger: Logger;
  onEvent(e: ServerSentEvent): void;
  /** Every successful (re)connection: anything may have happened meanwhile. */
  onOpen(): void;
  onConnected?(connected: boolean): void;
  /** No byte (not even a heartbeat) for this long: the connection is dead (default 75 s; the hub beats every 15 s). */
  idleTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export class UpstreamFollower {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private attempt = 0;
  connected = false;
  lastError: string | undefined;
  lastEventId: string | undefined;

  constructor(private readonly o: FollowerOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.controller?.abort(new Error('mirror stopping'));
  }

  private async connect(): Promise<void> {
    const o = this.o;
    const controller = new AbortController();
    this.controller = controller;
    const idleMs = o.idleTimeoutMs ?? 75_000;
    let idle: NodeJS.Timeout | undefined;
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(new Error(`no data from the upstream for ${idleMs} ms`)), idleMs);
      idle.unref();
    };
    let error: string;
    let opened = 0;
    try {
      touch();
      const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-cache' };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      if (this.lastEventId) headers['last-event-id'] = this.lastEventId;
      const res = await fetch(o.url, { headers, signal: controller.signal });
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`GET ${redactUrl(o.url)} answered ${res.status}`);
      }
      opened = Date.now();
      this.setConnected(true);
      this.lastError = undefined;
      o.logger.info({ upstream: redactUrl(o.url) }, 'following the upstream event stream');
      o.onOpen();
      await readEventStream(res.body, {
        onEvent: (e) => o.onEvent(e),
        onId: (id) => { this.lastEventId = id; },
        touch,
        onHandlerError: (err) => o.logger.warn({ err: (err as Error).message }, 'upstream event handler failed'),
      });
      error = 'the upstream closed the event stream';
    } catch (err) {
      const reason = controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : (err as Error);
      const cause = (reason as { cause?: { code?: string } }).cause?.code;
      error = reason.message === 'fetch failed' ? `cannot reach the upstream${cause ? ` (${cause})` : ''}` : reason.message;
    } finally {
      clearTimeout(idle);
    }
    const was = this.connected;
    this.setConnected(false);
    if (this.stopped) return;
    // A stream that stayed up a while earns a fresh backoff; one dropped at once does not.
    if (was && Date.now() - opened >= 30_000) this.attempt = 0;
    const base = o.backoffBaseMs ?? 500;
    const ceiling = Math.min(o.backoffMaxMs ?? 30_000, base * 2 ** Math.min(this.attempt, 20));
    this.attempt += 1;
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    // Once per kind of failure, not once per retry.
    o.logger[was || error !== this.lastError ? 'warn' : 'debug']({ upstream: redactUrl(o.url), retryInMs: delay, reason: error }, was ? 'upstream event stream lost; reconnecting' : 'cannot follow the upstream event stream; retrying');
    this.lastError = error;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) void this.connect();
    }, delay);
    this.timer.unref();
  }

  private setConnected(c: boolean): void {
    if (this.connected === c) return;
    this.connected = c;
    this.o.onConnected?.(c);
  }
}
