/**
 * Stopping the agent (SIGTERM) as an operator sees it on the hub: a health
 * check cut short is no verdict (not logged as a failure, never reported
 * Ready for the unjudged version), and a stop while idle still sends a last
 * report that says the agent stopped.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderFleet, type FleetSite } from '../../src/agent/fleet.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { captureLogger, current, faceRegistry, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

async function sites(url: string): Promise<FleetSite[]> {
  const res = await fetch(`${url}/api/v1/sites`);
  return ((await res.json()) as { sites: FleetSite[] }).sites;
}

describe('stopping the agent', () => {
  it('SIGTERM during a failing health check: no failure logged, the last report owes the verdict', async () => {
    const th = await startTestHub();
    const reg = faceRegistry('agent-stop-reg-', env, { versions: ['1', '2'] });
    const dir = tempDir('agent-stop-');
    const store = join(dir, 'store');
    const log = join(dir, 'restarts.log');
    const services = [{
      name: 'sentinel',
      models: ['face'],
      restart: [node, '-e', 'require("fs").appendFileSync(process.argv[1], "r\\n")', log],
      // Healthy on version 1, failing on any other: the check of 2 would fail after its 6 s.
      health: {
        command: [node, '-e', 'process.exit(require("fs").readlinkSync(process.argv[1]) === "1" ? 0 : 1)', join(store, 'models/face/current')],
        timeout_s: 6,
        interval_s: 0.2,
      },
    }];
    const cap = captureLogger();
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, hub: th.url }, { logger: cap.logger });
    await agent.whenIdle();
    expect(agent.status().health).toBe('Ready');

    reg.setCurrent('face', '2');
    reg.commit('v2');
    const pending = agent.request('manual', 'test');
    await waitFor(() => existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 2, 'the restart of version 2');
    await new Promise((r) => setTimeout(r, 700)); // a few failed tries of the check
    const stoppedAt = Date.now();
    await agent.stop();
    expect(Date.now() - stoppedAt).toBeLessThan(5000); // the check did not run out its 6 s
    const { result } = await pending;
    expect(result.degraded).toEqual([]);
    expect(current(store, 'face')).toBe('2');

    const errors = cap.lines().filter((l) => l.level >= 50).map((l) => l.msg);
    expect(errors).toEqual([]);
    expect(cap.text()).not.toMatch(/health check failed/);
    expect(cap.text()).toMatch(/sentinel: health check cut short/);

    const status = agent.status();
    expect(status.health).toBe('Progressing');
    expect(status.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: false, reason: 'VerdictOwed' });
    expect(status.conditions.find((c) => c.type === 'Ready')?.message).toMatch(/face 1 → 2; health check owed/);
    expect(status.models).toEqual([expect.objectContaining({ model: 'face', active: '2', verdictOwed: expect.objectContaining({ version: '2' }) })]);
    expect(status.services.at(-1)?.health).toMatchObject({ ok: false, aborted: true });

    // The hub holds that last report: not Ready, not in sync.
    const [site] = (await sites(th.url)).filter((s) => s.site === 'alpha');
    expect(site).toMatchObject({ health: 'Progressing', commit: reg.head() });
    expect((site!.conditions as Array<{ type: string; status: boolean; reason: string }>).find((c) => c.type === 'Ready')).toMatchObject({ status: false, reason: 'VerdictOwed' });
    const fleet = renderFleet([site!]);
    expect(fleet).toMatch(/^alpha +Progressing .* 0\/1 in sync +health check owed face 2/m);
  });

  it('stopped while idle: a last report with phase "stopped" reaches the hub', async () => {
    const th = await startTestHub();
    const reg = faceRegistry('agent-stop-reg-', env);
    const store = join(tempDir('agent-stop-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, hub: th.url });
    await agent.whenIdle();
    let before: FleetSite | undefined;
    await waitFor(async () => {
      before = (await sites(th.url)).find((s) => s.site === 'alpha' && s.phase === 'idle');
      return before !== undefined;
    }, 'the report of the first pass');
    await new Promise((r) => setTimeout(r, 20));
    await agent.stop();
    const after = (await sites(th.url)).find((s) => s.site === 'alpha')!;
    expect(after.phase).toBe('stopped');
    expect(Date.parse(after.receivedAt)).toBeGreaterThan(Date.parse(before!.receivedAt));
    expect(after.health).toBe('Ready'); // what it runs is unchanged; it says it no longer watches
  });

  it('a hub that never answers holds up the stop for a few seconds at most', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const hub = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const reg = faceRegistry('agent-stop-reg-', env);
    const store = join(tempDir('agent-stop-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, hub });
    await agent.whenIdle();
    const t0 = Date.now();
    await agent.stop();
    expect(Date.now() - t0).toBeLessThan(6000);
    expect(agent.status().phase).toBe('stopped');
    silent.closeAllConnections();
    silent.close();
  }, 30_000);
});

