/**
 * `modelsync rollout run --once` for a registry that is not on the hub: the
 * controller reads the fleet from a real hub's GET /api/v1/sites, commits the
 * step in the checkout and exits.
 */
import { describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

const env = isolatedGitEnv();

describe('rollout run --once', () => {
  it('advances from the reports a hub holds, and halts on one that says Degraded', async () => {
    const th = await startTestHub({ rolloutIntervalS: 0 });
    const reg = TestRegistry.init(tempDir('rollout-once-'), env);
    reg.addVersion('face', '1', { 'w.bin': 'one' });
    reg.addVersion('face', '2', { 'w.bin': 'two' });
    reg.setCurrent('face', '1', { rollout: { waves: [{ name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '1s' }, { name: 'all', sites: 'all' }] } });
    reg.site('alpha', { labels: { wave: 'canary' } });
    reg.site('beta', {});
    reg.commit('face 1');
    const run = (...args: string[]) => cliAsync([...args, '--repo', reg.dir], { cwd: reg.dir, env });
    expect((await run('promote', 'face', '2')).status).toBe(0);
    const report = (site: string, active: string, degraded = false) => fetch(`${th.url}/api/v1/sites/${site}/status`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ site, health: degraded ? 'Degraded' : 'Ready', models: [{ model: 'face', active, desired: active }], lastPass: { degraded: degraded ? [{ model: 'face', version: '2' }] : [] } }),
    });

    expect((await report('alpha', '1')).status).toBe(200);
    const waiting = await run('rollout', 'run', '--once', '--hub', th.url);
    expect(waiting.stdout).toContain('face 2: wait: waiting for 1 site to be Ready on 2: alpha');

    await report('alpha', '2');
    await new Promise((r) => setTimeout(r, 1100));
    const adv = await run('rollout', 'run', '--once', '--hub', th.url);
    expect(adv.stdout).toMatch(/face 2: advance: 1 site of the reached waves Ready on 2 for 1s \(commit [0-9a-f]{12}\)/);
    expect(reg.git('log', '-1', '--format=%s')).toBe('Rollout face 2: wave canary → all');

    await report('beta', '1', true);
    const halted = await run('rollout', 'run', '--once', '--hub', th.url);
    expect(halted.stdout).toContain('face 2: halt: 1 site Degraded on 2: beta (halt at 1)');
    expect(reg.git('log', '-1', '--format=%s')).toBe('Rollout face 2: halt, reached waves back to 1');
    const status = await run('rollout', 'status', 'face', '--hub', th.url);
    expect(status.stdout).toContain('face 1 → 2: halted at wave all');
    expect(status.stdout).toMatch(/all +beta \(degraded\)/);
  }, 120_000);
});
