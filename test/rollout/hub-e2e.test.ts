/**
 * A staged rollout end to end: a real hub, five agents with labels, a
 * rollout with three waves. The canary converges first and alone; after its
 * soak the second wave follows; a health check failing on one site of the
 * second wave halts the rollout and the reached waves go back to `from`,
 * with nobody typing a command. The hub repo's history shows one commit per
 * step, made by the controller inside `serve`.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current, startAgent, waitFor } from '../agent/helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;
const SITES: Record<string, Record<string, string>> = {
  alpha: { wave: 'canary' },
  beta: { ring: 'early' },
  gamma: { ring: 'early' },
  delta: { ring: 'late' },
  epsilon: { ring: 'late' },
};

describe('staged rollout through the hub', () => {
  it('canary first and alone, then the next wave after soak, then an automatic halt back to from', async () => {
    const th = await startTestHub({ rolloutIntervalS: 0.25 });
    const reg = TestRegistry.init(tempDir('rollout-e2e-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(30_000, 1) });
    reg.addVersion('face', '2', { 'model.bin': bytes(30_000, 2) });
    reg.setCurrent('face', '1', {
      rollout: {
        waves: [
          { name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '1s' },
          { name: 'early', sites: { labels: { ring: 'early' } }, soak: '1s' },
          { name: 'all', sites: 'all' },
        ],
        halt: { degraded: 1 },
      },
    });
    for (const [site, labels] of Object.entries(SITES)) reg.site(site, { labels });
    reg.commit('face 1, with a rollout policy');
    reg.git('remote', 'add', 'origin', th.repoUrl('registry'));
    await gitAsync(['push', '-q', '-u', 'origin', 'main'], { cwd: reg.dir, env });

    // When each site first ran 2 (wall clock), to order the waves.
    const on2 = new Map<string, number>();
    const stores: Record<string, string> = {};
    for (const site of Object.keys(SITES)) {
      const store = join(tempDir(`rollout-e2e-${site}-`), 'store');
      stores[site] = store;
      // beta's health check fails on version 2: it rolls back and reports Degraded.
      const health = site === 'beta'
        ? { command: [node, '-e', 'process.exit(require("fs").readlinkSync(process.argv[1]) === "2" ? 1 : 0)', join(store, 'models/face/current')], timeout_s: 5, interval_s: 0.2 }
        : { command: [node, '-e', '0'], timeout_s: 5 };
      await startAgent(
        { site, registry: `${th.url}/registry.git`, store, hub: th.url, services: [{ name: 'sentinel', models: ['face'], restart: [node, '-e', '0'], health }] },
        { onPass: () => { if (current(store, 'face') === '2' && !on2.has(site)) on2.set(site, Date.now()); } },
      );
    }
    const all = (v: string) => Object.values(stores).every((s) => current(s, 'face') === v);
    await waitFor(() => all('1'), 'every site on 1');

    const promoted = await cliAsync(['promote', 'face', '2', '--repo', reg.dir], { cwd: reg.dir, env });
    expect(promoted.stdout).toContain('Rollout face 2: start, wave canary');
    await gitAsync(['push', '-q', 'origin', 'main'], { cwd: reg.dir, env });

    const bare = join(th.data, 'repos', 'registry.git');
    const subjects = () => execFileSync('git', ['log', '--format=%s'], { cwd: bare, encoding: 'utf8' }).trim().split('\n');
    const commitTime = (subject: string) => Number(execFileSync('git', ['log', '--format=%ct %s'], { cwd: bare, encoding: 'utf8' }).split('\n').find((l) => l.endsWith(subject))!.split(' ')[0]) * 1000;

    await waitFor(() => current(stores.alpha!, 'face') === '2', 'the canary on 2', 30_000);
    // The canary alone: no other site has moved.
    for (const s of ['beta', 'gamma', 'delta', 'epsilon']) expect(current(stores[s]!, 'face')).toBe('1');

    // After the canary's soak the controller commits the next wave; beta fails its check, so it halts.
    await waitFor(() => subjects()[0] === 'Rollout face 2: halt, reached waves back to 1', 'the automatic halt', 60_000);
    await waitFor(() => all('1'), 'every site back on 1', 30_000);

    expect(subjects().slice(0, 4)).toEqual([
      'Rollout face 2: halt, reached waves back to 1',
      'Rollout face 2: wave canary → early',
      'Rollout face 2: start, wave canary',
      'face 1, with a rollout policy',
    ]);
    const advancedAt = commitTime('Rollout face 2: wave canary → early');
    // The canary ran 2 before the advance (commit times are whole seconds, rounded down).
    expect(on2.get('alpha')!).toBeLessThan(advancedAt + 1000);
    // gamma (wave 2) got 2 only after the advance; the last wave never did.
    expect(on2.get('gamma')).toBeGreaterThanOrEqual(advancedAt);
    expect(on2.has('delta')).toBe(false);
    expect(on2.has('epsilon')).toBe(false);
    // The halt names the site that degraded; the step changed only the rollout file.
    const halt = execFileSync('git', ['show', '--format=%B', '--name-only', 'HEAD'], { cwd: bare, encoding: 'utf8' });
    expect(halt).toContain('1 site Degraded on 2: beta');
    expect(halt.trim().split('\n').pop()).toBe('registry/rollouts/face.yaml');

    // The hub lists the rollout and where it stands (for the dashboard and scripts).
    await waitFor(async () => ((await (await fetch(`${th.url}/api/v1/rollouts`)).json()) as { rollouts: Array<{ status: string }> }).rollouts[0]?.status === 'halted', 'the hub listing the halted rollout');
    const { rollouts } = (await (await fetch(`${th.url}/api/v1/rollouts`)).json()) as { rollouts: Array<Record<string, unknown> & { waves: Array<Record<string, unknown>> }> };
    expect(rollouts[0]).toMatchObject({ repo: 'registry', model: 'face', version: '2', from: '1', status: 'halted' });
    expect(rollouts[0]!.waves.map((w) => [w.name, w.sites])).toEqual([['canary', ['alpha']], ['early', ['beta', 'gamma']], ['all', ['delta', 'epsilon']]]);
    // status --hub shows it under the fleet, and the dashboard lists it.
    const st = await cliAsync(['status', '--hub', th.url], { cwd: reg.dir, env });
    expect(st.stdout).toMatch(/^rollout registry: face 1 → 2: halted/m);
    expect(st.stdout).toMatch(/^ {2}[ ✓▶] early +beta, gamma$/m);
    const page = await (await fetch(`${th.url}/`)).text();
    expect(page).toContain('Rollouts in progress');
    expect(page).toMatch(/<td[^>]*>face<\/td><td[^>]*>2<\/td><td[^>]*>1<\/td>/);
  }, 120_000);
});
