/**
 * Notifications to real HTTP receivers on 127.0.0.1: signed bodies, retry
 * with backoff after failures, Slack format, stale when a site goes silent,
 * recovered when it is Ready again, and a receiver that hangs never slows
 * the hub's answer to an agent.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventHub } from '../../src/hub/events.ts';
import { loadNotifyFile } from '../../src/hub/notify/config.ts';
import { Notifier } from '../../src/hub/notify/index.ts';
import { SitesStatus } from '../../src/hub/sites-status.ts';
import { silentLogger } from '../../src/log.ts';
import { tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

interface Received { at: number; headers: IncomingMessage['headers']; body: string; status: number }

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/** A receiver answering with `statuses` in turn (then 200), or never answering when `hang`. */
async function receiver(statuses: number[] = [], hang = false): Promise<{ url: string; got: Received[] }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const status = statuses.shift() ?? 200;
      got.push({ at: Date.now(), headers: req.headers, body, status });
      if (hang) return;
      res.writeHead(status).end();
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
}

const SECRET = 'a-notify-secret-of-some-length';
const sign = (body: string): string => `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;

function degraded(reason: string): Record<string, unknown> {
  return { health: 'Degraded', schedule: '* * * * *', conditions: [{ type: 'Degraded', status: true, reason: 'HealthCheckFailed', message: reason }], models: [] };
}

async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('serve --notify', () => {
  it('posts a signed degraded event, retrying with backoff through two 503s, and a slack message to a second hook', async () => {
    const json = await receiver([503, 503]);
    const slack = await receiver();
    const dir = tempDir('notify-');
    writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
    const file = join(dir, 'notify.yaml');
    writeFileSync(file, `webhooks:\n  - url: ${json.url}\n    events: [degraded, recovered]\n    secret_file: secret\n  - url: ${slack.url}\n    format: slack\n    events: [degraded]\n`);
    const th = await startTestHub({ notify: file, notifyDelivery: { backoffBaseMs: 100, backoffMaxMs: 1000 } });
    const t0 = Date.now();
    const r = await fetch(`${th.url}/api/v1/sites/beta/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(degraded('face 3 failed: exit 1')) });
    expect(r.status).toBe(200);
    await until(() => json.got.length === 3 && slack.got.length === 1);
    expect(json.got.map((g) => g.status)).toEqual([503, 503, 200]);
    // Backoff: about 100 ms, then about 200 ms (±20 % jitter).
    expect(json.got[1]!.at - json.got[0]!.at).toBeGreaterThanOrEqual(75);
    expect(json.got[2]!.at - json.got[1]!.at).toBeGreaterThanOrEqual(155);
    for (const g of json.got) {
      expect(g.headers['x-modelsync-signature-256']).toBe(sign(g.body));
      expect(g.headers['content-type']).toBe('application/json');
    }
    const n = JSON.parse(json.got[2]!.body) as Record<string, unknown>;
    expect(n).toMatchObject({ event: 'degraded', site: 'beta', to: 'Degraded', hub: th.url });
    expect(n.reason).toContain('face 3 failed');
    const s = JSON.parse(slack.got[0]!.body) as { text: string };
    expect(s.text).toMatch(/beta: new → Degraded — HealthCheckFailed: face 3 failed/);
    expect(slack.got[0]!.headers['x-modelsync-signature-256']).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('a receiver that never answers does not slow the hub', async () => {
    const hung = await receiver([], true);
    const file = join(tempDir('notify-'), 'notify.yaml');
    writeFileSync(file, `webhooks:\n  - {url: "${hung.url}", events: [degraded]}\n`);
    const th = await startTestHub({ notify: file });
    for (let i = 0; i < 20; i++) {
      const t = Date.now();
      const r = await fetch(`${th.url}/api/v1/sites/s${i}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(degraded('x')) });
      expect(r.status).toBe(200);
      // Waiting on the receiver would take its 10 s delivery timeout; half that is room for load.
      expect(Date.now() - t).toBeLessThan(5000);
    }
    await until(() => hung.got.length >= 1);
  });

  it('stale after N schedule periods without a report, recovered once Ready again', async () => {
    const hook = await receiver();
    const file = join(tempDir('notify-'), 'notify.yaml');
    writeFileSync(file, `stale_after: 2\nwebhooks:\n  - url: ${hook.url}\n    events: [stale, recovered, conflict]\n    secret: ${SECRET}\n`);
    const cfg = await loadNotifyFile(file);
    let now = Date.parse('2026-01-01T00:00:00Z');
    const sites = new SitesStatus(tempDir('sites-'), silentLogger, { now: () => new Date(now), staleFactor: cfg.staleAfter, persist: async () => {} });
    const events = new EventHub({ ringSize: 10, heartbeatMs: 60_000, maxSubscribers: 1 });
    const n = new Notifier(cfg, { sites, events, hubUrl: () => 'http://hub', logger: silentLogger, gitDir: () => '/nonexistent' });
    try {
      // Every five minutes; stale after two periods without a report.
      await sites.put('alpha', { health: 'Ready', schedule: '*/5 * * * *', models: [] });
      now += 9 * 60_000;
      sites.sweep();
      expect(hook.got).toHaveLength(0);
      now += 2 * 60_000;
      sites.sweep();
      expect(sites.condition('alpha')?.condition).toBe('Stale');
      await until(() => hook.got.length === 1);
      await sites.put('alpha', { health: 'Ready', schedule: '*/5 * * * *', models: [] });
      await until(() => hook.got.length === 2);
      const [stale, recovered] = hook.got.map((g) => JSON.parse(g.body) as Record<string, unknown>);
      expect(stale).toMatchObject({ event: 'stale', site: 'alpha', from: 'Ready', to: 'Stale' });
      expect(stale!.reason).toMatch(/no report for 11 min/);
      expect(recovered).toMatchObject({ event: 'recovered', site: 'alpha', from: 'Stale', to: 'Ready' });
      for (const g of hook.got) expect(g.headers['x-modelsync-signature-256']).toBe(sign(g.body));
    } finally {
      n.close();
      events.close();
    }
  });

  it('an invalid notify file names the file, line and field', async () => {
    const file = join(tempDir('notify-'), 'notify.yaml');
    writeFileSync(file, 'webhooks:\n  - url: ftp://x\n    events: [degradedd]\n');
    await expect(loadNotifyFile(file)).rejects.toThrow(/notify\.yaml:2:10: webhooks\[0\]\.url: must be an http\(s\) URL\n.*notify\.yaml:3:14: webhooks\[0\]\.events\[0\]: Invalid option/);
  });
});
