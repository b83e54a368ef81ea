/**
 * A soaking site as the fleet sees it: the agent's /status, its report to a
 * real hub, `status --hub` (the real CLI) and the dashboard all say
 * Progressing (soak) while the metric gate watches, and Degraded once the
 * gate failed and the agent rolled back.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { current, faceRegistry, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { startPromStub, type PromStub } from './helpers/prom.ts';

const env = isolatedGitEnv();
const stubs: PromStub[] = [];
afterAll(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

function cli(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, HOME: tempDir('home-') } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
  });
}

async function siteOnHub(url: string): Promise<Record<string, unknown> | undefined> {
  const body = (await (await fetch(`${url}/api/v1/sites`)).json()) as { sites: Array<Record<string, unknown>> };
  return body.sites.find((s) => s.site === 'alpha');
}

describe('Progressing (soak) across the fleet views', () => {
  it('agent /status, the hub, status --hub and the dashboard', async () => {
    const th = await startTestHub();
    const prom = await startPromStub([20]);
    stubs.push(prom);
    const reg = faceRegistry('gate-hub-reg-', env, { versions: ['1', '2'] });
    const store = join(tempDir('gate-hub-'), 'store');
    const services = [{
      name: 'detector', models: ['face'], restart: [process.execPath, '-e', '0'],
      health: { metric: { url: prom.url, query: 'avg_over_time(fps{model="face"}[5m])', min: 15, for: '10m', every: '250ms' } },
    }];
    const agent = await startAgent({ site: 'alpha', registry: `${reg.dir}/.git`, store, hub: th.url, listen: '127.0.0.1:0', services });
    // A long soak (10m): healthy while the test looks at every view, then the test makes the rate collapse.
    await waitFor(() => current(store, 'face') === '1' && agent.health() === 'Progressing (soak)', 'install of 1, soaking');
    reg.setCurrent('face', '2');
    reg.commit('promote face 2');
    await agent.request('manual', 'test');
    expect(agent.health()).toBe('Progressing (soak)');

    const own = (await (await fetch(`${agent.url}/status`)).json()) as { health: string };
    expect(own.health).toBe('Progressing (soak)');
    await waitFor(async () => (await siteOnHub(th.url))?.condition === 'Progressing (soak)', 'the hub to see the soak');
    expect(String((await siteOnHub(th.url))?.conditionReason)).toMatch(/Soak: face 1 → 2 \(detector\): soaking/);
    const st = await cli(['status', '--hub', th.url]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/^alpha\s+Progressing \(soak\)\s.*0\/1 in sync\s+soak face 2: soaking/m);
    const page = await (await fetch(`${th.url}/`)).text();
    expect(page).toMatch(/data-site="alpha" data-condition="Progressing \(soak\)"/);
    expect(page).toContain('soak: soaking');

    prom.setValues([3]);
    await waitFor(() => agent.health() === 'Degraded', 'the rollback', 30_000);
    expect(current(store, 'face')).toBe('1');
    await waitFor(async () => (await siteOnHub(th.url))?.condition === 'Degraded', 'the hub to see Degraded');
    const after = await cli(['status', '--hub', th.url]);
    expect(after.code).toBe(4);
    expect(after.stdout).toMatch(/^alpha\s+Degraded\s.*degraded face 2/m);
    await agent.stop();
  });
});
