/**
 * Soaks outlive the process that started them: an agent restarted mid-soak
 * watches the gate again (and a failure then is still judged: a first
 * install has nothing to go back to, so it stays active, Degraded); and
 * `agent --once` waits for the soak its pass started, rolling back before
 * it exits when the gate failed.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { current, faceRegistry, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { startPromStub, type PromStub } from './helpers/prom.ts';

const env = isolatedGitEnv();
const stubs: PromStub[] = [];
afterAll(async () => {
  await Promise.all(stubs.splice(0).map((s) => s.close()));
});
const gate = (url: string, forD: string) => ({ metric: { url, query: 'avg_over_time(fps{model="face"}[5m])', min: 15, for: forD, every: '250ms' } });

describe('soaks across restarts and --once', () => {
  it('an agent restarted mid-soak watches again; a failure then is judged', async () => {
    const prom = await startPromStub([20]);
    stubs.push(prom);
    const reg = faceRegistry('gate-restart-reg-', env);
    const store = join(tempDir('gate-restart-'), 'store');
    const fields = { site: 'alpha', registry: `${reg.dir}/.git`, store, services: [{ name: 'detector', models: ['face'], restart: [process.execPath, '-e', '0'], health: gate(prom.url, '10m') }] };
    const first = await startAgent(fields);
    await waitFor(() => current(store, 'face') === '1' && first.health() === 'Progressing (soak)', 'the soak of 1');
    await first.stop();
    expect(existsSync(join(store, 'soak.json'))).toBe(true);

    const second = await startAgent(fields);
    await second.whenIdle();
    expect(second.health()).toBe('Progressing (soak)');
    prom.setValues([3]);
    await waitFor(() => second.health() === 'Degraded', 'the gate to fail after the restart');
    await second.whenIdle();
    // A first install has nothing to go back to: it stays active, Degraded.
    expect(current(store, 'face')).toBe('1');
    expect(second.status().lastPass?.degraded[0]?.reason).toMatch(/metric gate failed: .* = 3 < min 15/);
    await second.stop();
    expect(existsSync(join(store, 'soak.json'))).toBe(false);
  });

  it('agent --once waits for the soak, and rolls back before it exits when the gate fails', async () => {
    const prom = await startPromStub([20]);
    stubs.push(prom);
    const reg = faceRegistry('gate-once-reg-', env, { versions: ['1', '2'] });
    const dir = tempDir('gate-once-');
    writeFileSync(join(dir, 'agent.yaml'), [
      'site: alpha', `registry: ${reg.dir}`, 'store: store', 'verify_interval_s: 0', 'services:',
      '  - name: detector', '    models: [face]', `    restart: [${JSON.stringify(process.execPath)}, "-e", "0"]`,
      `    health: {metric: {url: "${prom.url}", query: 'avg_over_time(fps{model="face"}[5m])', min: 15, for: 1s, every: 250ms}}`, '',
    ].join('\n'));
    const ok = await cliAsync(['agent', '--once', '--config', 'agent.yaml', '--log-level', 'info'], { cwd: dir, env });
    expect(ok.status).toBe(0);
    expect(ok.stderr).toContain('detector: metric gate passed');
    expect(current(join(dir, 'store'), 'face')).toBe('1');

    reg.setCurrent('face', '2');
    reg.commit('promote face 2');
    prom.setValues([20, 3]);
    const bad = await cliAsync(['agent', '--once', '--config', 'agent.yaml', '--log-level', 'info'], { cwd: dir, env });
    expect(bad.status).toBe(4);
    expect(bad.stderr).toContain('detector: metric gate failed; rolling back');
    expect(bad.stdout).toMatch(/^status: degraded \(1 switched, rolled back/m);
    expect(current(join(dir, 'store'), 'face')).toBe('1');
  });
});
