/**
 * What an operator reads must be true (issue 9 item 11), with real agents,
 * a real hub and the real CLI:
 * - `status --hub` shows an agent that shut down as Stopped, not Ready;
 * - `agent --once` whose report the hub refuses says so and exits 5;
 * - `reconcile --config … --force` under a busy agent waits for the store
 *   lock (bounded, saying so) instead of failing at once.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

function registry(): TestRegistry {
  const reg = TestRegistry.init(tempDir('op-truth-reg-'), env);
  reg.addVersion('face', '1', { 'model.bin': bytes(10_000, 1) });
  reg.addVersion('face', '2', { 'model.bin': bytes(10_000, 2) });
  reg.setCurrent('face', '1');
  reg.site('alpha', {});
  reg.commit('v1');
  return reg;
}

describe('what the operator reads is true', () => {
  it('status --hub shows a stopped agent as Stopped', async () => {
    const reg = registry();
    const hub = await startTestHub();
    const store = join(tempDir('op-truth-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, hub: hub.url, schedule: '0 0 1 1 *' });
    await agent.whenIdle();
    await waitFor(async () => (await cliAsync(['status', '--hub', hub.url], { cwd: reg.dir, env })).stdout.match(/^alpha +Ready /m) !== null, 'Ready at the hub');
    await agent.stop();
    const r = await cliAsync(['status', '--hub', hub.url], { cwd: reg.dir, env });
    expect(r.stdout).toMatch(/^alpha +Stopped /m);
    expect(r.stdout).not.toMatch(/^alpha +Ready /m);
  });

  it('agent --once whose report the hub refuses says so and exits 5', async () => {
    const reg = registry();
    const hub = await startTestHub({ tokens: true, sites: ['beta'] });
    const dir = tempDir('op-truth-once-');
    // beta's token may not report for alpha: the hub answers 403.
    writeFileSync(join(dir, 'token'), hub.secrets.bySite.beta!);
    writeFileSync(join(dir, 'agent.yaml'), JSON.stringify({ site: 'alpha', registry: reg.dir, store: join(dir, 'store'), hub: hub.url, token_file: 'token' }));
    const r = await cliAsync(['agent', '--config', 'agent.yaml', '--once'], { cwd: dir, env });
    expect(r.status).toBe(5);
    expect(r.stdout).toMatch(/^status: changed/m);
    expect(r.stdout).toMatch(/report NOT delivered to the hub: POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/sites\/alpha\/status: hub answered 403.*; the hub does not show this pass \(exit 5\)/);
    expect(r.stdout + r.stderr).not.toMatch(/will report after the next pass/);
    expect(current(join(dir, 'store'), 'face')).toBe('1');
  });

  it('reconcile --config --force under a busy agent waits for the lock, saying so, then applies', async () => {
    const reg = registry();
    const dir = tempDir('op-truth-lock-');
    const store = join(dir, 'store');
    // A restart that takes 2 s: the agent's pass holds the store lock meanwhile.
    const services = [{ name: 'slow', models: ['face'], restart: [node, '-e', 'setTimeout(() => {}, 2000)'] }];
    writeFileSync(join(dir, 'agent.yaml'), JSON.stringify({ site: 'alpha', registry: reg.dir, store, services, schedule: '0 0 1 1 *' }));
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, schedule: '0 0 1 1 *' });
    await agent.whenIdle();
    reg.setCurrent('face', '2');
    reg.commit('v2');
    void agent.request('manual', 'test');
    await waitFor(() => existsSync(join(store, 'lock')) && agent.status().phase === 'reconciling', 'the agent holding the lock');
    const t0 = Date.now();
    const r = await cliAsync(['reconcile', '--config', 'agent.yaml', '--force'], { cwd: dir, env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/the store is locked by pid \d+ .*\(reconcile alpha.*; waiting up to 2 min for it/);
    expect(Date.now() - t0).toBeGreaterThan(300);
    expect(current(store, 'face')).toBe('2');
    await agent.whenIdle();
    await agent.stop();
  });
});
