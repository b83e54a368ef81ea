/**
 * Rollout steps as commits in a real checkout: `promote` of a model with a
 * policy writes the rollout file; the controller, on a controlled clock and
 * a status source holding the sites' reports, advances, halts and finishes,
 * one commit per step, each undone by a stock `git revert`; people advance,
 * pause, resume and abort through the CLI.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { RolloutController } from '../../src/rollout/controller.ts';
import { CheckoutRepo } from '../../src/rollout/repo.ts';
import { cli, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

const env = isolatedGitEnv();
const POLICY = {
  waves: [
    { name: 'canary', sites: { labels: { wave: 'canary' } }, soak: '10m' },
    { name: 'north', sites: { labels: { region: 'north' } }, soak: '10m' },
    { name: 'all', sites: 'all' },
  ],
  halt: { degraded: 1 },
};

function registry(): TestRegistry {
  const reg = TestRegistry.init(tempDir('rollout-steps-'), env);
  reg.addVersion('face', '1', { 'w.bin': 'one' });
  reg.addVersion('face', '2', { 'w.bin': 'two' });
  reg.setCurrent('face', '1', { rollout: POLICY });
  reg.site('alpha', { labels: { wave: 'canary', region: 'north' } });
  reg.site('beta', { labels: { region: 'north' } });
  reg.site('gamma', { labels: { region: 'south' } });
  reg.commit('face 1 with a rollout policy');
  return reg;
}

const rolloutFile = (reg: TestRegistry) => parse(readFileSync(join(reg.dir, 'registry/rollouts/face.yaml'), 'utf8')) as { state: Record<string, string> };
const subjects = (reg: TestRegistry, n: number) => reg.git('log', `-${n}`, '--format=%s').split('\n');

/** Reports as GET /api/v1/sites lists them: each site on `active`, some Degraded on 2. */
function fleet(active: Record<string, string>, degraded: string[] = []) {
  return {
    sites: async () => Object.entries(active).map(([site, v]) => ({
      site, health: degraded.includes(site) ? 'Degraded' : 'Ready',
      models: [{ model: 'face', active: v, desired: '2', outcome: degraded.includes(site) ? 'degraded' : 'unchanged' }],
      lastPass: { degraded: degraded.includes(site) ? [{ model: 'face', version: '2', reason: 'health check failed' }] : [] },
    })),
  };
}

describe('rollout steps', () => {
  it('promote starts a rollout; the controller advances after soak, halts on Degraded; revert undoes a step', async () => {
    const reg = registry();
    const p = cli(['promote', 'face', '2', '--repo', reg.dir], { cwd: reg.dir, env });
    expect(p.stderr).toBe('');
    expect(p.stdout).toContain('Rollout face 2: start, wave canary');
    expect(rolloutFile(reg).state).toMatchObject({ wave: 'canary', status: 'progressing' });
    // Sites not reached keep 1: current_version did not move.
    expect(parse(readFileSync(join(reg.dir, 'registry/model_registry.yaml'), 'utf8')).models.face.current_version).toBe('1');
    expect(cli(['validate', '--repo', reg.dir], { cwd: reg.dir, env }).status).toBe(0);

    let now = Date.now();
    const status = { reports: fleet({ alpha: '1', beta: '1', gamma: '1' }) };
    const c = new RolloutController({ repo: new CheckoutRepo(reg.dir, env), status: { sites: () => status.reports.sites() }, now: () => new Date(now), logger: silentLogger });
    expect((await c.tick())[0]!.decision).toMatchObject({ kind: 'wait', why: 'waiting for 1 site to be Ready on 2: alpha' });
    status.reports = fleet({ alpha: '2', beta: '1', gamma: '1' });
    expect((await c.tick())[0]!.decision.kind).toBe('wait');
    now += 10 * 60_000;
    const adv = (await c.tick())[0]!;
    expect(adv).toMatchObject({ decision: { kind: 'advance', to: 'north' } });
    expect(subjects(reg, 1)).toEqual(['Rollout face 2: wave canary → north']);
    expect(reg.git('rev-parse', 'HEAD')).toBe(adv.commit);
    expect(rolloutFile(reg).state).toMatchObject({ wave: 'north', status: 'progressing' });
    // The step changed only the rollout file.
    expect(reg.git('show', '--name-only', '--format=', 'HEAD')).toBe('registry/rollouts/face.yaml');

    // A stock revert of the step goes back to the canary wave.
    reg.git('revert', '--no-edit', 'HEAD');
    expect(rolloutFile(reg).state.wave).toBe('canary');
    reg.git('revert', '--no-edit', 'HEAD');
    expect(rolloutFile(reg).state.wave).toBe('north');

    status.reports = fleet({ alpha: '2', beta: '1', gamma: '1' }, ['beta']);
    const halt = (await c.tick())[0]!;
    expect(halt.decision).toMatchObject({ kind: 'halt', degraded: ['beta'] });
    expect(subjects(reg, 1)).toEqual(['Rollout face 2: halt, reached waves back to 1']);
    expect(rolloutFile(reg).state).toMatchObject({ status: 'halted', wave: 'north' });
    expect(rolloutFile(reg).state.reason).toContain('beta');
    // Halted: nothing more happens by itself.
    expect((await c.tick())[0]!.decision).toEqual({ kind: 'wait', why: 'the rollout is halted' });
    expect(subjects(reg, 5)).toEqual([
      'Rollout face 2: halt, reached waves back to 1',
      'Revert "Revert "Rollout face 2: wave canary → north""',
      'Revert "Rollout face 2: wave canary → north"',
      'Rollout face 2: wave canary → north',
      'Rollout face 2: start, wave canary',
    ]);
  }, 120_000);

  it('people advance, pause, resume and abort; the last advance finishes: current_version set, file removed', () => {
    const reg = registry();
    const run = (...args: string[]) => cli([...args, '--repo', reg.dir], { cwd: reg.dir, env });
    expect(run('promote', 'face', '2').status).toBe(0);
    expect(run('promote', 'face', '2').stderr).toContain('a rollout of face 2 is in progress');
    expect(run('rollout', 'pause', 'face').stdout).toContain('Rollout face 2: pause at wave canary');
    expect(rolloutFile(reg).state.status).toBe('paused');
    expect(run('rollout', 'resume', 'face').stdout).toContain('Rollout face 2: resume at wave canary');
    expect(run('rollout', 'status').stdout).toBe('face 1 → 2: progressing, 1/3 waves reached (canary*, north, all)\n');
    const st = run('rollout', 'status', 'face');
    expect(st.stdout).toContain('face 1 → 2: progressing at wave canary');
    expect(st.stdout).toMatch(/▶ canary +soak 10m +alpha/);
    expect(st.stdout).toMatch(/north +soak 10m +beta/);
    expect(run('rollout', 'advance', 'face').stdout).toContain('wave canary → north');
    expect(run('rollout', 'advance', 'face').stdout).toContain('wave north → all');
    expect(run('rollout', 'advance', 'face').stdout).toContain('Rollout face 2: done, 2 current everywhere');
    expect(existsSync(join(reg.dir, 'registry/rollouts/face.yaml'))).toBe(false);
    const entry = parse(readFileSync(join(reg.dir, 'registry/model_registry.yaml'), 'utf8')).models.face;
    expect(entry).toMatchObject({ current_version: '2', previous_version: '1' });
    expect(reg.git('show', '--name-only', '--format=', 'HEAD').split('\n').sort()).toEqual(['registry/model_registry.yaml', 'registry/rollouts/face.yaml']);
    expect(run('rollout', 'status', 'face').stdout).toContain('no rollout of face is in progress');

    // A publish of a model with a policy does not switch everyone: it leaves the promotion (the rollout) to promote.
    const w = join(tempDir('rollout-w3-'), 'w.bin');
    writeFileSync(w, 'three');
    const pub = run('publish', 'face', '3', w);
    expect(pub.stdout).toContain('Not promoted: face has a rollout policy');
    expect(parse(readFileSync(join(reg.dir, 'registry/model_registry.yaml'), 'utf8')).models.face.current_version).toBe('2');
    // A new rollout, aborted: every site stays on current_version.
    expect(run('promote', 'face', '3').status).toBe(0);
    expect(run('rollout', 'abort', 'face').stdout).toContain('Rollout face 3: abort, every site back to 2');
    expect(existsSync(join(reg.dir, 'registry/rollouts/face.yaml'))).toBe(false);
    // --now skips the policy.
    const now = run('promote', 'face', '3', '--now');
    expect(now.stdout).toContain('Promoted face: 2 -> 3');
    expect(existsSync(join(reg.dir, 'registry/rollouts/face.yaml'))).toBe(false);
  }, 120_000);
});
