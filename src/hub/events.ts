/**
 * Change events: one `ref` event per ref a push changed, fanned out to
 * server-sent-event subscribers, with a bounded in-memory ring so a client
 * that reconnects with `Last-Event-ID` misses nothing. When the ring cannot
 * cover the gap (the hub restarted, or too much happened) the client gets a
 * `resync` event instead, meaning "something may have changed: reconcile".
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface RefEvent {
  repo: string;
  ref: string;
  /** Commit before the push; 40 zeros when the ref was created. */
  before: string;
  /** Commit after the push; 40 zeros when the ref was deleted. */
  after: string;
  /** ISO 8601 time the push finished. */
  at: string;
}

interface Stored {
  seq: number;
  id: string;
  event: RefEvent;
}

interface Subscriber {
  res: ServerResponse;
  repo: string | null;
  /** Also receives `site` events (a site reported or changed condition): dashboards, `wait`. */
  sites: boolean;
  /** The token the stream was opened with, so a revoked token's streams can be ended. */
  token: string | null;
}

export interface EventHubOptions {
  ringSize: number;
  heartbeatMs: number;
  maxSubscribers: number;
  /** Distinguishes this process's ids from a previous run's. */
  epoch?: string;
}

/** A subscriber further behind than this is dropped; it reconnects and resumes. */
const MAX_BUFFERED_BYTES = 1 << 20;

export type ReplayPlan = { kind: 'none' } | { kind: 'replay'; events: Stored[] } | { kind: 'resync'; reason: string };

export class EventHub extends EventEmitter<{ ref: [RefEvent & { id: string }]; subscribers: [number] }> {
  private readonly ring: Stored[] = [];
  private seq = 0;
  private readonly subs = new Set<Subscriber>();
  /** The subset that follows site events: every report of every site is offered to these alone, not to each agent's stream. */
  private readonly siteSubs = new Set<Subscriber>();
  private readonly timer: NodeJS.Timeout;
  readonly epoch: string;

  constructor(private readonly opts: EventHubOptions) {
    super();
    this.epoch = opts.epoch ?? Date.now().toString(36);
    this.timer = setInterval(() => this.heartbeat(), opts.heartbeatMs);
    this.timer.unref();
  }

  get subscriberCount(): number {
    return this.subs.size;
  }

  publish(event: RefEvent): string {
    this.seq += 1;
    const stored: Stored = { seq: this.seq, id: `${this.epoch}-${this.seq}`, event };
    this.ring.push(stored);
    if (this.ring.length > this.opts.ringSize) this.ring.shift();
    const frame = formatEvent(stored);
    for (const sub of this.subs) if (sub.repo === null || sub.repo === event.repo) this.write(sub, frame);
    this.emit('ref', { ...event, id: stored.id });
    return stored.id;
  }

  /**
   * Tell `sites` subscribers a site reported. Not kept in the ring: a
   * dashboard that reconnects re-reads the whole fleet anyway.
   */
  publishSite(data: { site: string; condition: string; receivedAt: string }): void {
    const frame = `event: site\ndata: ${JSON.stringify(data)}\n\n`;
    for (const sub of this.siteSubs) this.write(sub, frame);
  }

  /** End the streams opened with a token that no longer authenticates (revoked); returns how many. */
  endStreams(stillValid: (token: string) => boolean): number {
    let n = 0;
    for (const sub of this.subs) {
      if (sub.token !== null && !stillValid(sub.token)) {
        sub.res.end();
        this.subs.delete(sub);
        this.siteSubs.delete(sub);
        n += 1;
      }
    }
    return n;
  }

  /** What a client that last saw `lastId` should be sent on reconnect. */
  planReplay(lastId: string | undefined): ReplayPlan {
    if (!lastId) return { kind: 'none' };
    const m = /^([a-z0-9]+)-(\d+)$/.exec(lastId);
    if (!m) return { kind: 'resync', reason: 'unrecognised Last-Event-ID' };
    if (m[1] !== this.epoch) return { kind: 'resync', reason: 'the hub restarted since that event' };
    const seq = Number(m[2]);
    if (seq > this.seq) return { kind: 'resync', reason: 'Last-Event-ID is from the future' };
    const oldest = this.ring[0]?.seq ?? this.seq + 1;
    if (seq < oldest - 1) return { kind: 'resync', reason: 'too many events since then to replay' };
    return { kind: 'replay', events: this.ring.filter((e) => e.seq > seq) };
  }

  /** Turn the response into an event stream until the client or the hub closes it. */
  subscribe(req: IncomingMessage, res: ServerResponse, filter: { repo: string | null; lastId: string | undefined; sites?: boolean; token?: string | null }): boolean {
    if (this.subs.size >= this.opts.maxSubscribers) return false;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      Connection: 'keep-alive',
      // nginx and friends must not buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true, 30_000);
    const sub: Subscriber = { res, repo: filter.repo, sites: filter.sites ?? false, token: filter.token ?? null };
    res.write(`retry: 3000\n: modelsync events (heartbeat every ${Math.round(this.opts.heartbeatMs / 1000)} s)\n\n`);
    const plan = this.planReplay(filter.lastId);
    if (plan.kind === 'resync') res.write(`event: resync\ndata: ${JSON.stringify({ reason: plan.reason })}\n\n`);
    if (plan.kind === 'replay') for (const e of plan.events) if (sub.repo === null || sub.repo === e.event.repo) res.write(formatEvent(e));
    this.subs.add(sub);
    if (sub.sites) this.siteSubs.add(sub);
    this.emit('subscribers', this.subs.size);
    res.on('close', () => {
      this.subs.delete(sub);
      this.siteSubs.delete(sub);
      this.emit('subscribers', this.subs.size);
    });
    return true;
  }

  /** End every stream (shutdown); clients reconnect with their Last-Event-ID. */
  close(): void {
    clearInterval(this.timer);
    for (const sub of this.subs) sub.res.end();
    this.subs.clear();
    this.siteSubs.clear();
  }

  private heartbeat(): void {
    for (const sub of this.subs) this.write(sub, ': heartbeat\n\n');
  }

  private write(sub: Subscriber, frame: string): void {
    if (sub.res.writableLength > MAX_BUFFERED_BYTES) {
      sub.res.destroy();
      return;
    }
    sub.res.write(frame);
  }
}

function formatEvent(e: Stored): string {
  return `id: ${e.id}\nevent: ref\ndata: ${JSON.stringify(e.event)}\n\n`;
}
