/**
 * Per-site series on the hub's /metrics, checked by Prometheus's own
 * `promtool check metrics` (Debian's prometheus package), and with values a
 * person would alert on.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startTestHub } from '../helpers/hub.ts';

async function report(url: string, site: string, body: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${url}/api/v1/sites/${site}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(r.status).toBe(200);
}

describe('hub per-site metrics', () => {
  it('exposes condition, last report time and model info per site, and promtool accepts the page', async () => {
    const th = await startTestHub();
    const before = Date.now() / 1000;
    await report(th.url, 'alpha', { health: 'Ready', models: [{ model: 'face', declared: '2', desired: '2', active: '2' }] });
    await report(th.url, 'beta', { health: 'Degraded', conditions: [{ type: 'Degraded', status: true, reason: 'HealthCheckFailed', message: 'face 3: exit 1' }], models: [{ model: 'face', declared: '3', desired: '3', active: '2' }, { model: 'ssd', declared: '1', desired: '1', active: null }] });
    // A newer agent's condition passes through instead of breaking anything.
    await report(th.url, 'gamma', { health: 'Stalled', models: [] });
    await report(th.url, 'delta', { health: 'Quarantined (by ops)', models: [] });
    const text = await (await fetch(`${th.url}/metrics`)).text();
    expect(text).toContain('modelsync_hub_site_condition{condition="Ready",site="alpha"} 1');
    expect(text).toContain('modelsync_hub_site_condition{condition="Degraded",site="alpha"} 0');
    expect(text).toContain('modelsync_hub_site_condition{condition="Degraded",site="beta"} 1');
    expect(text).toContain('modelsync_hub_site_condition{condition="Stalled",site="gamma"} 1');
    expect(text).toContain('modelsync_hub_site_condition{condition="Quarantined (by ops)",site="delta"} 1');
    expect(text).toContain('modelsync_hub_site_condition{condition="Ready",site="delta"} 0');
    expect(text).toContain('modelsync_hub_site_model_info{active="2",declared="3",model="face",site="beta"} 1');
    expect(text).toContain('modelsync_hub_site_model_info{active="",declared="1",model="ssd",site="beta"} 1');
    const ts = Number(/modelsync_hub_site_last_report_timestamp_seconds\{site="alpha"\} (\S+)/.exec(text)?.[1]);
    expect(ts).toBeGreaterThanOrEqual(Math.floor(before));
    expect(ts).toBeLessThanOrEqual(Date.now() / 1000);
    const check = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});
