/**
 * A wave's own `gate: {metric}`, watched by the rollout controller with the
 * verdict sites soak by: on a controlled clock, a healthy gate lets the wave
 * advance once both its soak and the gate's `for` are over; a falling value
 * halts the rollout (reached waves back to `from`), one commit, as a
 * Degraded site would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { RolloutController } from '../../src/rollout/controller.ts';
import { CheckoutRepo } from '../../src/rollout/repo.ts';
import { cli, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { startPromStub, type PromStub } from './helpers/prom.ts';

const env = isolatedGitEnv();
const stubs: PromStub[] = [];
afterAll(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});

function registry(url: string): TestRegistry {
  const reg = TestRegistry.init(tempDir('wave-gate-'), env);
  reg.addVersion('face', '1', { 'w.bin': 'one' });
  reg.addVersion('face', '2', { 'w.bin': 'two' });
  reg.setCurrent('face', '1', {
    rollout: {
      waves: [
        { name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '1m', gate: { metric: { url, query: 'sum(rate(frames_total{model="face"}[1m]))', min: 15, for: '2m', every: '10s' } } },
        { name: 'all', sites: 'all' },
      ],
      halt: { degraded: 1 },
    },
  });
  reg.site('alpha', { labels: { wave: 'canary' } });
  reg.site('beta', {});
  reg.commit('face 1 with a gated rollout policy');
  expect(cli(['validate', '--repo', reg.dir], { cwd: reg.dir, env }).status).toBe(0);
  const p = cli(['promote', 'face', '2', '--repo', reg.dir], { cwd: reg.dir, env });
  expect(p.stdout).toContain('Rollout face 2: start, wave canary');
  return reg;
}

const state = (reg: TestRegistry) => (parse(readFileSync(join(reg.dir, 'registry/rollouts/face.yaml'), 'utf8')) as { state: { since: string; wave: string; status: string } }).state;
const canaryReady = { sites: async () => [{ site: 'alpha', health: 'Ready', models: [{ model: 'face', active: '2', desired: '2' }], lastPass: { degraded: [] } }] };

describe('a wave gate', () => {
  it('advances only once the soak and the gate both passed', async () => {
    const prom = await startPromStub([20]);
    stubs.push(prom);
    const reg = registry(prom.url);
    let now = Date.parse(state(reg).since);
    const c = new RolloutController({ repo: new CheckoutRepo(reg.dir, env), status: canaryReady, now: () => new Date(now), logger: silentLogger });
    const decisions: string[] = [];
    for (let i = 0; i < 20; i++) {
      const d = (await c.tick())[0]!.decision;
      decisions.push(d.kind === 'wait' ? d.why : d.kind);
      if (d.kind !== 'wait') break;
      now += 10_000;
    }
    // The wave's soak (1m) ran out first; then it waited for the gate's `for` (2m) with answers counted.
    expect(decisions).toContain('wave canary gate: soaking: 1m10s of 2m, 8 answers within bounds, last 20');
    expect(decisions.at(-1)).toBe('advance');
    expect(state(reg)).toMatchObject({ wave: 'all', status: 'progressing' });
    expect(prom.queries[0]).toBe('sum(rate(frames_total{model="face"}[1m]))');
  });

  it('halts the rollout when the gate fails', async () => {
    const prom = await startPromStub([20, 20, 4]);
    stubs.push(prom);
    const reg = registry(prom.url);
    let now = Date.parse(state(reg).since);
    const c = new RolloutController({ repo: new CheckoutRepo(reg.dir, env), status: canaryReady, now: () => new Date(now), logger: silentLogger });
    let last;
    for (let i = 0; i < 5; i++) {
      last = (await c.tick())[0]!;
      if (last.decision.kind !== 'wait') break;
      now += 10_000;
    }
    expect(last!.decision).toMatchObject({ kind: 'halt', why: 'wave canary gate failed: fps{model="face"} = 4 < min 15 after 20s' });
    expect(state(reg).status).toBe('halted');
    expect(reg.git('log', '-1', '--format=%s')).toMatch(/^Rollout face 2: halt/);
  });
});
