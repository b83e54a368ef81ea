/**
 * The dashboard as a person sees it, in Debian's real chromium driven by
 * playwright-core: the demo's three sites in the matrix, gamma's conflict
 * with its reason, a Degraded site appearing without a reload (within a
 * second) with its reason a click away, site text escaped, and the Basic
 * prompt of a hub with tokens. A screenshot lands in test-artifacts/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoCommand } from '../../src/commands/demo.ts';
import { silentLogger } from '../../src/log.ts';
import { ROOT } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let browser: Browser;
beforeAll(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  mkdirSync(ARTIFACTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
});

function degradedReport(site: string, reason: string): Record<string, unknown> {
  return {
    site,
    health: 'Degraded',
    phase: 'idle',
    commit: 'c0ffee0000000000000000000000000000000000',
    schedule: '*/15 * * * *',
    staleAfterSeconds: 1800,
    conditions: [{ type: 'Degraded', status: true, reason: 'HealthCheckFailed', message: reason, since: new Date().toISOString() }],
    lastPass: { status: 'degraded', degraded: [{ model: 'face_recognition', version: '2026-01-15', reason }], conflicts: [] },
    models: [{ model: 'face_recognition', declared: '2026-01-15', desired: '2026-01-15', active: '2025-12-08', outcome: 'rolled-back', reason: '', detail: '' }],
  };
}

describe('dashboard in chromium', () => {
  it('shows the demo fleet, gamma in conflict, and a Degraded report live with its reason', async () => {
    const lines: string[] = [];
    let stop!: () => void;
    const until = new Promise<void>((r) => (stop = r));
    let kept!: (url: string) => void;
    const keptUrl = new Promise<string>((r) => (kept = r));
    const demo = demoCommand({ keep: true, until }, {
      cwd: ROOT,
      env: { ...process.env, MODELSYNC_LOG_LEVEL: 'error' },
      out: (t) => {
        lines.push(t);
        const m = /keep running: open (http:\/\/\S+\/) /.exec(t);
        if (m) kept(m[1]!);
      },
      logger: silentLogger,
      tty: false,
    });
    const url = await Promise.race([keptUrl, demo.then(() => { throw new Error(`demo ended early:\n${lines.join('\n')}`); })]);
    expect(lines.join('\n')).toMatch(/dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await page.goto(url);
      await expect.poll(() => page.textContent('#conn'), { timeout: 5000 }).toContain('live');
      for (const site of ['alpha', 'beta', 'gamma']) expect(await page.locator(`tr[data-site="${site}"]`).count()).toBe(1);
      expect(await page.getAttribute('tr[data-site="gamma"]', 'data-condition')).toBe('Conflict');
      await page.click('tr[data-site="gamma"] summary');
      expect(await page.textContent('tr[data-site="gamma"] .why')).toMatch(/active 2026-01-15/);
      // The registry's history: the publish (a promotion) and the revert, newest first.
      const kinds = await page.locator('ol.timeline li[data-kind]').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
      expect(kinds).toContain('promotion');
      expect(kinds).toContain('revert');
      expect(kinds).toContain('transition');

      // A report arrives while the page is open: no reload, within a second.
      const reason = 'smoke test exited 1 <script>window.pwned=1</script>';
      const posted = Date.now();
      const res = await fetch(`${url}api/v1/sites/delta/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(degradedReport('delta', reason)) });
      expect(res.status).toBe(200);
      await page.waitForSelector('tr[data-site="delta"]', { timeout: 1000 });
      const latency = Date.now() - posted;
      expect(await page.getAttribute('tr[data-site="delta"]', 'data-condition')).toBe('Degraded');
      expect(await page.getAttribute('tr[data-site="delta"] td[data-state="degraded"]', 'title')).toContain('failed its health check');
      await page.click('tr[data-site="delta"] summary');
      expect(await page.textContent('tr[data-site="delta"] .why')).toContain('<script>window.pwned=1</script>');
      expect(await page.evaluate('window.pwned')).toBeUndefined();
      // gamma's details stayed open across the live swap.
      expect(await page.locator('tr[data-site="gamma"] details').getAttribute('open')).not.toBeNull();
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
      console.log(`dashboard: report → row on the page in ${latency} ms`);

      // A phone: the matrix scrolls inside its box, the page itself does not.
      await page.setViewportSize({ width: 390, height: 844 });
      const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth') as number;
      expect(overflow).toBeLessThanOrEqual(0);
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });

      // Complete without JavaScript: same rows from the server's HTML alone.
      const noJs = await browser.newContext({ javaScriptEnabled: false });
      const p2 = await noJs.newPage();
      await p2.goto(url);
      expect(await p2.locator('tbody tr').count()).toBe(4);
      expect(await p2.textContent('#conn')).toContain('JavaScript off');
      await noJs.close();
    } finally {
      await page.close();
      stop();
      await demo;
      // --keep keeps the demo directory for a person to look at; a test leaves nothing behind.
      const kept = lines.map((l) => /^\s*Kept (\S+) \(/.exec(l)?.[1]).find(Boolean);
      expect(kept).toMatch(/modelsync-demo-/);
      rmSync(kept!, { recursive: true, force: true });
    }
  }, 120_000);

  it('behind tokens: a Basic prompt (401), site tokens refused, a publisher sees it live over Basic', async () => {
    const th = await startTestHub({ tokens: true, sites: ['beta'] });
    const bare = await fetch(`${th.url}/`);
    expect(bare.status).toBe(401);
    expect(bare.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect((await fetch(`${th.url}/`, { headers: th.auth(th.secrets.site) })).status).toBe(403);
    const ctx = await browser.newContext({ httpCredentials: { username: 'ops', password: th.secrets.publisher } });
    try {
      const page = await ctx.newPage();
      await page.goto(`${th.url}/`);
      await expect.poll(() => page.textContent('#conn'), { timeout: 5000 }).toContain('live');
      expect(await page.textContent('#fleet')).toContain('No site has reported');
      const r = await fetch(`${th.url}/api/v1/sites/beta/status`, { method: 'POST', headers: { ...th.auth(th.secrets.site), 'content-type': 'application/json' }, body: JSON.stringify({ health: 'Ready', models: [{ model: 'm', declared: '1', desired: '1', active: '1' }] }) });
      expect(r.status).toBe(200);
      await page.waitForSelector('tr[data-site="beta"][data-condition="Ready"]', { timeout: 1000 });
    } finally {
      await ctx.close();
    }
  });
});
