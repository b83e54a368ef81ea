/**
 * `GET /` on the hub: the fleet at a glance. Reads the status store and the
 * registry's history; writes one HTML document.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { SitesStatus } from '../sites-status.ts';
import type { HistoryCache } from './history.ts';
import { renderDashboard } from './render.ts';
import { buildView } from './view.ts';

export { HistoryCache } from './history.ts';

export async function serveDashboard(res: ServerResponse, opts: { sites: SitesStatus; history: HistoryCache; base: string; head: boolean; now?: number }): Promise<void> {
  const now = opts.now ?? Date.now();
  const { deploys, rollouts } = await opts.history.all();
  const records = [...opts.sites.records()];
  const view = buildView({ records, conditions: opts.sites.allConditions(), transitions: opts.sites.transitions(), deploys, rollouts, now });
  const nonce = randomBytes(16).toString('base64');
  const html = renderDashboard(view, { nonce, base: opts.base, now });
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
    'Cache-Control': 'no-store',
    // Nothing but this page's own inline style and script, and requests back to the hub.
    'Content-Security-Policy': `default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
  });
  res.end(opts.head ? undefined : html);
}
