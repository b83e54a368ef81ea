/**
 * The metric gate end to end, on a real agent with a Prometheus-compatible
 * endpoint of the test's own: after a switch the site reports Progressing
 * (soak) while the gate watches; a rate that falls below `min` rolls the
 * switch back through the health-failure path (Degraded, previous version
 * active, services restarted); a gate that stays healthy lets the site go
 * InSync after `for`; a new version mid-soak supersedes the soak; an
 * unreachable Prometheus neither rolls back nor passes.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { current, faceRegistry, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { freePort, startPromStub, type PromStub } from './helpers/prom.ts';
import { decide } from '../../src/rollout/decide.ts';
import { parseReport } from '../../src/rollout/observe.ts';
import type { RolloutFile } from '../../src/registry/schema.ts';
import type { RolloutSite } from '../../src/registry/rollout-waves.ts';
import type { AgentStatus } from '../../src/agent/daemon.ts';

const env = isolatedGitEnv();
const node = process.execPath;
const stubs: PromStub[] = [];
afterAll(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

function service(url: string, extra: Record<string, unknown> = {}): Array<Record<string, unknown>> {
  return [{
    name: 'detector', models: ['face'], restart: [node, '-e', '0'],
    health: { metric: { url, query: 'avg_over_time(fps{model="face"}[5m])', min: 15, for: '3s', every: '500ms', ...extra } },
  }];
}

/** A two-wave rollout of face 2 whose canary is alpha, judged on this agent's own /status document. */
function canaryDecision(status: AgentStatus, now: number, version = '2'): ReturnType<typeof decide>['decision'] {
  const rollout: RolloutFile = {
    model: 'face', version, from: '1',
    waves: [{ name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '1s' }, { name: 'all', sites: 'all' }],
    halt: { degraded: 1 },
    state: { wave: 'canary', since: new Date(now - 3_600_000).toISOString(), status: 'progressing' },
  };
  const report = parseReport(JSON.parse(JSON.stringify(status)) as Record<string, unknown>)!;
  const population: RolloutSite[] = [{ name: 'alpha', labels: { wave: 'canary' } }, { name: 'beta', labels: {} }];
  return decide({ rollout, population, reports: new Map([['alpha', report]]), readySince: new Map([['alpha', now - 3_600_000]]), now }).decision;
}

describe('metric gate', () => {
  it('soaks after a switch, then rolls back to the previous version when the rate falls below min', async () => {
    const prom = await startPromStub([20]);
    stubs.push(prom);
    const reg = faceRegistry('gate-fall-reg-', env, { versions: ['1', '2'] });
    const store = join(tempDir('gate-fall-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: `${reg.dir}/.git`, store, services: service(prom.url) });
    // The first install soaks too, and passes: the site is InSync only after `for`.
    await waitFor(() => current(store, 'face') === '1', 'install of 1');
    await waitFor(() => agent.health() === 'Progressing (soak)', 'the soak of 1');
    await waitFor(() => agent.health() === 'Ready', 'the soak of 1 to pass');
    expect(agent.status().conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: true, reason: 'InSync' });

    // v2 runs fine for two queries, then its rate collapses.
    prom.setValues([20, 20, 12]);
    reg.setCurrent('face', '2');
    reg.commit('promote face 2');
    await agent.request('manual', 'test');
    expect(current(store, 'face')).toBe('2');
    const soaking = agent.status();
    expect(soaking.health).toBe('Progressing (soak)');
    expect(soaking.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: false, reason: 'Soak' });
    expect(soaking.conditions.find((c) => c.type === 'Progressing')?.message).toMatch(/face 1 → 2 \(detector\): soaking/);
    expect(soaking.models.find((m) => m.model === 'face')?.soak).toMatchObject({ version: '2', service: 'detector', state: 'watching' });
    // The staged-rollout controller does not advance a wave while one of its sites soaks, however long the wave's own soak was.
    expect(canaryDecision(soaking, Date.now())).toEqual({ kind: 'wait', why: 'waiting for 1 site to be Ready on 2: alpha' });

    await waitFor(() => agent.health() === 'Degraded', 'the rollback after the gate failed');
    await agent.whenIdle();
    expect(current(store, 'face')).toBe('1');
    const s = agent.status();
    expect(s.lastPass?.rolledBack).toEqual([{ model: 'face', failed: '2', restored: '1' }]);
    expect(s.lastPass?.triggers).toContain('soak');
    expect(s.lastPass?.degraded[0]?.reason).toMatch(/metric gate failed: fps\{model="face"\} = 12 < min 15/);
    expect(s.models.find((m) => m.model === 'face')?.soak).toBeUndefined();
    // A failed gate fails the wave as a failed health check does: the rollout halts.
    expect(canaryDecision(s, Date.now())).toMatchObject({ kind: 'halt', degraded: ['alpha'] });
    // Degraded stays for this commit: the next pass does not switch to 2 again.
    await agent.request('manual', 'again');
    expect(current(store, 'face')).toBe('1');
    expect(agent.health()).toBe('Degraded');
    await agent.stop();
  });

  it('a gate that stays healthy: InSync after `for`; a new version mid-soak supersedes the soak', async () => {
    const prom = await startPromStub([30]);
    stubs.push(prom);
    const reg = faceRegistry('gate-ok-reg-', env, { versions: ['1', '2', '3'] });
    const store = join(tempDir('gate-ok-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: `${reg.dir}/.git`, store, services: service(prom.url, { for: '4s' }) });
    await waitFor(() => current(store, 'face') === '1' && agent.health() === 'Ready', 'install of 1, soaked');

    reg.setCurrent('face', '2');
    reg.commit('promote face 2');
    await agent.request('manual', 'test');
    expect(agent.health()).toBe('Progressing (soak)');
    // The agent keeps running passes meanwhile; v3 arrives mid-soak and supersedes the soak of 2.
    reg.setCurrent('face', '3');
    reg.commit('promote face 3');
    await agent.request('manual', 'test');
    expect(current(store, 'face')).toBe('3');
    const s = agent.status();
    expect(s.health).toBe('Progressing (soak)');
    expect(s.models.find((m) => m.model === 'face')?.soak).toMatchObject({ version: '3' });
    expect(s.conditions.find((c) => c.type === 'Progressing')?.message).toMatch(/face 2 → 3/);
    expect(canaryDecision(s, Date.now(), '3').kind).toBe('wait');
    await waitFor(() => agent.health() === 'Ready', 'the soak of 3 to pass', 20_000);
    expect(current(store, 'face')).toBe('3');
    expect(agent.status().conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: true, reason: 'InSync' });
    expect(agent.status().lastPass?.rolledBack).toEqual([]);
    // Once the gate passed, the controller sees the site Ready and the wave advances.
    expect(canaryDecision(agent.status(), Date.now(), '3')).toMatchObject({ kind: 'advance', from: 'canary', to: 'all' });
    await agent.stop();
  });

  it('an unreachable Prometheus: no rollback, no pass; the site stays Progressing (soak), overdue, until it answers', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/api/v1/query`;
    const reg = faceRegistry('gate-down-reg-', env);
    const store = join(tempDir('gate-down-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: `${reg.dir}/.git`, store, services: service(url, { for: '2s' }) });
    await waitFor(() => current(store, 'face') === '1', 'install of 1');
    await waitFor(() => agent.status().models[0]?.soak?.overdue === true, 'the gate to be overdue', 20_000);
    const s = agent.status();
    expect(s.health).toBe('Progressing (soak)');
    expect(s.models[0]?.soak?.reason).toMatch(/no verdict after .*: only 0 of the 2 answers needed \(last miss: GET http:\/\/127\.0\.0\.1:\d+\/api\/v1\/query: cannot reach the server \(ECONNREFUSED\)\)/);
    expect(s.lastPass?.rolledBack).toEqual([]);
    expect(current(store, 'face')).toBe('1');
    // Prometheus comes back: the answers it gives decide.
    const prom = await startPromStub([25], port);
    stubs.push(prom);
    await waitFor(() => agent.health() === 'Ready', 'the gate to pass once answered', 20_000);
    expect(prom.queries.length).toBeGreaterThanOrEqual(2);
    await agent.stop();
  });
});
