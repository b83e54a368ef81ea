/**
 * Gating on the fleet through the real CLI against a real hub: `wait`
 * exits 0 once every selected site is Ready on the version, 4 when one is
 * Degraded on it, 5 at the timeout, with a progress line; `status --hub`
 * exits 4 / 3 / 0; `status --hub --watch` prints a site that reports while
 * it runs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

const env = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: tempDir('home-') });

function run(args: string[], onStderr?: (d: string) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: env() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(d.toString());
    });
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function site(active: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { health: 'Ready', phase: 'idle', models: [{ model: 'face', declared: '2', desired: '2', active }], lastPass: { degraded: [], conflicts: [] }, ...extra };
}

async function report(url: string, name: string, body: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${url}/api/v1/sites/${name}/status`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(r.status).toBe(200);
}

describe('wait and status exit codes', () => {
  it('wait: 0 once every site is Ready on the version, with progress on stderr', async () => {
    const th = await startTestHub();
    await report(th.url, 'alpha', site('2'));
    await report(th.url, 'beta', site('1', { health: 'Progressing' }));
    let progress = '';
    const waiting = run(['wait', 'face', '2', '--hub', th.url, '--timeout', '30s', '--interval', '200ms'], (d) => (progress += d));
    const end = Date.now() + 15_000;
    while (!progress.includes('1/2 Ready')) {
      if (Date.now() > end) throw new Error(`no progress line: ${progress}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await report(th.url, 'beta', site('2'));
    const r = await waiting;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^face 2: 1\/2 Ready · waiting on beta \(runs 1\)/m);
    expect(r.stderr).toMatch(/^face 2: 2\/2 Ready/m);
    expect(r.stdout.trim()).toBe('face 2 is Ready on 2 sites: alpha, beta');
  });

  it('wait: 4 when a selected site is Degraded on the version, 5 at the timeout; --sites selects', async () => {
    const th = await startTestHub();
    await report(th.url, 'alpha', site('2'));
    await report(th.url, 'edge-1', site('1', { health: 'Degraded', lastPass: { degraded: [{ model: 'face', version: '2', reason: 'smoke test exit 1' }], conflicts: [] } }));
    await report(th.url, 'edge-2', site('1'));
    const bad = await run(['wait', 'face', '2', '--hub', th.url, '--timeout', '10s']);
    expect(bad.code).toBe(4);
    expect(bad.stdout).toMatch(/DEGRADED: edge-1: 2 failed its health check: smoke test exit 1/);
    const ok = await run(['wait', 'face', '2', '--hub', th.url, '--sites', 'alpha', '--timeout', '10s']);
    expect(ok.code).toBe(0);
    const t0 = Date.now();
    const slow = await run(['wait', 'face', '2', '--hub', th.url, '--sites', 'alpha,edge-2,nowhere', '--timeout', '1s', '--interval', '200ms']);
    expect(slow.code).toBe(5);
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(slow.stdout).toMatch(/timed out after 1 s .*1\/3 Ready · waiting on edge-2 \(runs 1\) · no report yet: nowhere/);
  });

  it('status --hub: 4 with a Degraded site, 3 with a conflict only, 0 when all is well; --watch follows', async () => {
    const th = await startTestHub();
    await report(th.url, 'alpha', site('2'));
    expect((await run(['status', '--hub', th.url])).code).toBe(0);
    await report(th.url, 'beta', site('3', { health: 'Conflict', lastPass: { degraded: [], conflicts: [{ model: 'face' }] } }));
    expect((await run(['status', '--hub', th.url])).code).toBe(3);
    await report(th.url, 'gamma', site('1', { health: 'Degraded', lastPass: { degraded: [{ model: 'face', version: '2' }], conflicts: [] } }));
    const s = await run(['status', '--hub', th.url]);
    expect(s.code).toBe(4);
    expect(s.stdout).toMatch(/^gamma +Degraded/m);

    const child = spawn(process.execPath, [CLI, 'status', '--hub', th.url, '--watch'], { env: env() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
    const wait = async (re: RegExp): Promise<void> => {
      const end = Date.now() + 10_000;
      while (!re.test(out)) {
        if (Date.now() > end) throw new Error(`no ${re} in:\n${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await wait(/^gamma +Degraded/m);
    expect(out).not.toMatch(/^delta/m);
    await report(th.url, 'delta', site('2'));
    await wait(/^delta +Ready/m);
    child.kill('SIGINT');
    expect(await exited).toBe(4);
  });

  it('status --store exits 0 for a store with nothing wrong', () => {
    const r = spawnSync(process.execPath, [CLI, 'status', '--store', tempDir('store-')], { env: env(), encoding: 'utf8' });
    expect(r.status).toBe(0);
  });
});
