/**
 * Turns what the hub sees into notifications: site transitions
 * (degraded, conflict, stale, and recovered once a site that was one of
 * those is Ready again) and rollout steps (a push that changed
 * registry/rollouts/*.yaml), formatted per webhook and handed to its queue.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../../log.ts';
import type { EventHub, RefEvent } from '../events.ts';
import type { Metrics } from '../metrics.ts';
import { ZERO_OID } from '../repos.ts';
import type { SitesStatus, Transition } from '../sites-status.ts';
import type { NotifyConfig, NotifyEventKind } from './config.ts';
import { WebhookQueue, type DeliveryOptions } from './deliver.ts';

export { loadNotifyFile } from './config.ts';
export { SIGNATURE_HEADER, signBody } from './deliver.ts';

const run = promisify(execFile);

export interface Notification {
  event: NotifyEventKind;
  at: string;
  /** The hub's URL, so a receiver of several hubs knows which. */
  hub: string;
  site?: string;
  from?: string | null;
  to?: string;
  reason?: string;
  rollout?: { repo: string; file: string; change: 'started' | 'updated' | 'finished'; commit: string };
}

/** The event a transition means, if any. `bad` remembers per site which trouble a later Ready recovers from. */
export function eventFor(t: Transition, bad: Map<string, string>): NotifyEventKind | null {
  const to = t.to;
  if (to === 'Degraded' || to === 'Conflict' || to === 'Stale') {
    bad.set(t.site, to);
    return to.toLowerCase() as NotifyEventKind;
  }
  if (to === 'Ready' && bad.has(t.site)) {
    bad.delete(t.site);
    return 'recovered';
  }
  return null;
}

export function formatSlack(n: Notification): string {
  const icon = { degraded: ':red_circle:', recovered: ':large_green_circle:', conflict: ':large_purple_circle:', stale: ':white_circle:', rollout: ':arrows_counterclockwise:' }[n.event];
  const text = n.rollout
    ? `${icon} rollout ${n.rollout.change}: ${n.rollout.file} (${n.rollout.repo} ${n.rollout.commit.slice(0, 12)})`
    : `${icon} ${n.site}: ${n.from ?? 'new'} → ${n.to}${n.reason ? ` — ${n.reason}` : ''}`;
  return JSON.stringify({ text, modelsync: n });
}

export class Notifier {
  private readonly queues: WebhookQueue[];
  private readonly bad = new Map<string, string>();
  private readonly offs: Array<() => void> = [];

  constructor(cfg: NotifyConfig, private readonly deps: { sites: SitesStatus; events: EventHub; hubUrl: () => string; logger: Logger; metrics?: Metrics; gitDir(repo: string): string; delivery?: Partial<DeliveryOptions> }) {
    const count = deps.metrics?.counter('modelsync_hub_notifications_total', 'Notifications by outcome: sent, failed (after every retry), dropped (queue full).');
    this.queues = cfg.webhooks.map((hook) => new WebhookQueue(hook, { logger: deps.logger, onResult: (r) => count?.({ result: r }), ...deps.delivery }));
    deps.metrics?.gauge('modelsync_hub_notifications_queued', 'Notifications waiting for delivery, over every webhook.', () => this.queues.reduce((n, q) => n + q.pending, 0));
    const onTransition = (t: Transition): void => {
      const event = eventFor(t, this.bad);
      if (event) this.send({ event, at: t.at, hub: deps.hubUrl(), site: t.site, from: t.from, to: t.to, reason: t.reason });
    };
    const onRef = (e: RefEvent): void => void this.rolloutChanges(e);
    deps.sites.on('transition', onTransition);
    deps.events.on('ref', onRef);
    this.offs.push(() => deps.sites.off('transition', onTransition), () => deps.events.off('ref', onRef));
  }

  send(n: Notification): void {
    for (const q of this.queues) {
      if (!q.hook.events.has(n.event)) continue;
      q.enqueue(q.hook.format === 'slack' ? formatSlack(n) : JSON.stringify(n));
    }
  }

  async idle(): Promise<void> {
    await Promise.all(this.queues.map((q) => q.idle()));
  }

  close(): void {
    for (const off of this.offs) off();
    for (const q of this.queues) q.close();
  }

  /** One rollout notification per rollout file a push to the default branch added, changed or removed. */
  private async rolloutChanges(e: RefEvent): Promise<void> {
    if (e.after === ZERO_OID || !this.queues.some((q) => q.hook.events.has('rollout'))) return;
    const gitDir = this.deps.gitDir(e.repo);
    try {
      const head = (await run('git', ['--git-dir', gitDir, 'symbolic-ref', 'HEAD'])).stdout.trim();
      if (head !== e.ref) return;
      const range = e.before === ZERO_OID ? [e.after] : [e.before, e.after];
      const args = e.before === ZERO_OID ? ['ls-tree', '-r', '--name-only', e.after, '--', 'registry/rollouts/'] : ['diff', '--name-status', '--no-renames', ...range, '--', 'registry/rollouts/'];
      const out = (await run('git', ['--git-dir', gitDir, ...args], { maxBuffer: 1 << 20 })).stdout;
      for (const line of out.split('\n').filter(Boolean).slice(0, 50)) {
        const [status, file] = e.before === ZERO_OID ? ['A', line] : line.split('\t');
        if (!file || !/\.ya?ml$/.test(file)) continue;
        const change = status === 'A' ? 'started' : status === 'D' ? 'finished' : 'updated';
        this.send({ event: 'rollout', at: e.at, hub: this.deps.hubUrl(), rollout: { repo: e.repo, file, change, commit: e.after } });
      }
    } catch (err) {
      this.deps.logger.warn({ repo: e.repo, err: (err as Error).message }, 'could not read rollout changes for notifications');
    }
  }
}
