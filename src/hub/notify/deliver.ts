/**
 * Delivery to one webhook: a bounded queue drained one request at a time (a
 * receiver sees events in order), each retried with exponential backoff on
 * network errors, 5xx and 429. enqueue() never waits: the hub answering
 * agents matters more than a chat message, so a full queue drops its oldest
 * entry and counts it.
 */
import { createHmac } from 'node:crypto';
import { errorMessage } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { redactUrl } from '../../util/redact.ts';
import type { WebhookConfig } from './config.ts';

export interface DeliveryOptions {
  logger: Logger;
  fetch?: typeof fetch;
  /** Queue length per webhook (default 1000). */
  queueSize?: number;
  /** Attempts per notification (default 6). */
  attempts?: number;
  /** First retry delay and ceiling (default 1 s … 60 s). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  timeoutMs?: number;
  /** Told of every outcome (metrics). */
  onResult?(result: 'sent' | 'failed' | 'dropped'): void;
}

export const SIGNATURE_HEADER = 'X-Modelsync-Signature-256';

/** `sha256=<hex HMAC-SHA256 of the body>`, as GitHub's X-Hub-Signature-256. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export class WebhookQueue {
  private readonly queue: string[] = [];
  private draining = false;
  private closed = false;
  private wake: (() => void) | null = null;
  private readonly fetchImpl: typeof fetch;

  constructor(readonly hook: WebhookConfig, private readonly opts: DeliveryOptions) {
    this.fetchImpl = opts.fetch ?? fetch;
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(body: string): void {
    if (this.closed) return;
    this.queue.push(body);
    if (this.queue.length > (this.opts.queueSize ?? 1000)) {
      this.queue.shift();
      this.opts.onResult?.('dropped');
      this.opts.logger.warn({ url: redactUrl(this.hook.url) }, 'notification queue full: dropped the oldest notification');
    }
    if (!this.draining) void this.drain();
  }

  /** Stop retrying; what is queued is dropped (the hub is shutting down). */
  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** Resolves when the queue is empty (tests). */
  async idle(): Promise<void> {
    while (this.draining) await new Promise((r) => setTimeout(r, 10));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const body = this.queue[0]!;
        const ok = await this.deliver(body);
        if (this.queue[0] === body) this.queue.shift();
        this.opts.onResult?.(ok ? 'sent' : 'failed');
      }
    } finally {
      this.draining = false;
    }
  }

  private async deliver(body: string): Promise<boolean> {
    const attempts = this.opts.attempts ?? 6;
    const base = this.opts.backoffBaseMs ?? 1000;
    const max = this.opts.backoffMaxMs ?? 60_000;
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'modelsync-hub' };
    if (this.hook.secret) headers[SIGNATURE_HEADER] = signBody(this.hook.secret, body);
    let why = '';
    for (let i = 1; i <= attempts && !this.closed; i++) {
      try {
        const res = await this.fetchImpl(this.hook.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000), redirect: 'error' });
        await res.body?.cancel().catch(() => {});
        if (res.ok) return true;
        why = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429 && res.status !== 408) break;
      } catch (err) {
        why = errorMessage(err);
      }
      if (i < attempts) await this.sleep(Math.min(max, base * 2 ** (i - 1)) * (0.8 + Math.random() * 0.4));
    }
    this.opts.logger.warn({ url: redactUrl(this.hook.url), reason: why }, 'notification not delivered; giving up on it');
    return false;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }
}
