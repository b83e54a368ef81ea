/**
 * The agent on a local-path registry (a checkout on the same machine): the
 * watch on its refs, health-gated activation with real child processes,
 * templates, self-heal, coalescing and the schedule on a controlled clock.
 */
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { signBody } from '../../src/agent/webhook.ts';
import { renderResult } from '../../src/commands/reconcile.ts';
import { StoreLayout, acquireLock, readState } from '../../src/store/index.ts';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { ManualClock, settle } from './helpers/manual-clock.ts';
import { bytes, current, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

function registry(): TestRegistry {
  const reg = TestRegistry.init(tempDir('agent-local-reg-'), env);
  reg.addVersion('face', '2025-01-01', { 'model.bin': bytes(50_000, 1), 'info.txt': 'good v1\n' });
  reg.addVersion('face', '2025-02-01', { 'model.bin': bytes(50_000, 2), 'info.txt': 'BROKEN v2\n' });
  reg.addVersion('face', '2025-03-01', { 'model.bin': bytes(50_000, 3), 'info.txt': 'good v3\n' });
  reg.addVersion('ssd', '1', { 'w.bin': bytes(20_000, 4) });
  reg.setCurrent('face', '2025-01-01');
  reg.setCurrent('ssd', '1');
  reg.site('alpha', {});
  reg.commit('initial registry');
  return reg;
}

/** A service whose restart logs which version was current, and whose health check fails on a BROKEN model. */
function sentinel(store: string, dir: string): { services: unknown[]; log: string } {
  const log = join(dir, 'restarts.log');
  const cur = join(store, 'models/face/current');
  return {
    log,
    services: [
      {
        name: 'sentinel',
        models: ['face'],
        restart: [node, '-e', 'const fs=require("fs");fs.appendFileSync(process.argv[1], fs.readlinkSync(process.argv[2])+"\\n")', log, cur],
        health: {
          command: [node, '-e', 'const t=require("fs").readFileSync(process.argv[1],"utf8");if(t.includes("BROKEN")){console.error("smoke test failed: "+t.trim());process.exit(1)}', join(cur, 'info.txt')],
          // Generous: node starts slowly on a loaded machine, and only the broken version ever waits this long.
          timeout_s: 3,
          interval_s: 0.3,
        },
      },
    ],
  };
}

const restarts = (log: string): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);

describe('health-gated activation', () => {
  it('a version that fails its health check is rolled back, reported Degraded, not retried, and recovery is reported', async () => {
    const reg = registry();
    const dir = tempDir('agent-health-');
    const store = join(dir, 'store');
    const { services, log } = sentinel(store, dir);
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, listen: '127.0.0.1:0' });
    await agent.whenIdle();
    expect(current(store, 'face')).toBe('2025-01-01');
    expect(restarts(log)).toEqual(['2025-01-01']);

    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote the broken face model');
    const bad = await agent.request('manual', 'test');
    expect(bad.result.status).toBe('degraded');
    expect(bad.result.degraded).toEqual([expect.objectContaining({ model: 'face', version: '2025-02-01' })]);
    expect(bad.result.degraded[0]!.reason).toMatch(/smoke test failed: BROKEN v2/);
    // The counts say what happened: one version switched to and rolled back, not "0 changed".
    expect(bad.result.rolledBack).toEqual([{ model: 'face', failed: '2025-02-01', restored: '2025-01-01' }]);
    expect(renderResult(bad.result)).toMatch(/^status: degraded \(1 switched, rolled back, 49 KiB fetched, 1 degraded, /m);
    // Switched, restarted, failed, switched back, restarted again.
    expect(current(store, 'face')).toBe('2025-01-01');
    expect(restarts(log)).toEqual(['2025-01-01', '2025-02-01', '2025-01-01']);
    const s = agent.status();
    expect(s.health).toBe('Degraded');
    // Truthful wording: the commit was attempted, the site runs the previous version.
    expect(s.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: false, reason: 'Degraded', message: `attempted ${reg.head().slice(0, 12)}; running previous 2025-01-01 for face (degraded: 2025-02-01 failed its health check)`,
    });
    expect(s.commit).toBe(reg.head());
    expect(s.appliedCommit).not.toBe(reg.head());
    expect(s.conditions.find((c) => c.type === 'Degraded')).toMatchObject({ status: true, reason: 'HealthCheckFailed' });
    expect(s.services.at(-2)).toMatchObject({ service: 'sentinel', phase: 'switch', health: { ok: false } });
    expect(s.services.at(-1)).toMatchObject({ service: 'sentinel', phase: 'rollback', health: { ok: true } });
    expect(await (await fetch(`${agent.url}/metrics`)).text()).toContain('modelsync_degraded{site="alpha"} 1');

    // Same commit: not retried (no restart), still degraded.
    const again = await agent.request('manual', 'test');
    expect(again.result.status).toBe('degraded');
    expect(restarts(log)).toHaveLength(3);

    // The registry moves on to a good version: applied, recovered.
    reg.setCurrent('face', '2025-03-01');
    reg.commit('promote a fixed face model');
    const good = await agent.request('manual', 'test');
    expect(good.result.status).toBe('changed');
    expect(current(store, 'face')).toBe('2025-03-01');
    expect(agent.status().health).toBe('Ready');
    expect(agent.status().conditions.find((c) => c.type === 'Degraded')?.status).toBe(false);
    await agent.stop();
  });

  it('`modelsync agent --once` exits 4 when the new version fails its health check', async () => {
    const reg = registry();
    const dir = tempDir('agent-once-');
    const store = join(dir, 'store');
    const { services, log } = sentinel(store, dir);
    const cfg = join(dir, 'agent.yaml');
    writeFileSync(cfg, `${JSON.stringify({ site: 'alpha', registry: reg.dir, store, services, verify_interval_s: 0 }, null, 2)}\n`);
    const first = await cliAsync(['agent', '--config', cfg, '--once'], { cwd: dir, env });
    expect(first.stderr).not.toMatch(/internal error/);
    expect(first.status).toBe(0);
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote the broken face model');
    const second = await cliAsync(['agent', '--config', cfg, '--once', '--json'], { cwd: dir, env });
    expect(second.status).toBe(4);
    const doc = JSON.parse(second.stdout) as { status: string; agent: { health: string } };
    expect(doc.status).toBe('degraded');
    expect(doc.agent.health).toBe('Degraded');
    expect(current(store, 'face')).toBe('2025-01-01');
    expect(restarts(log)).toEqual(['2025-01-01', '2025-02-01', '2025-01-01']);
    // status --store does not call the degraded commit applied.
    const st = await cliAsync(['status', '--store', store], { cwd: dir, env });
    const head = reg.head().slice(0, 12);
    expect(st.stdout).toMatch(new RegExp(`^applied commit: (?!${head})[0-9a-f]{12} \\(last attempted ${head}\\)$`, 'm'));
    expect(st.stdout).toContain(`attempted ${head}; running previous 2025-01-01 for face (degraded: 2025-02-01 failed its health check)`);
    expect(st.status).toBe(4);
  });
});

describe('versions activated by a one-shot reconcile', () => {
  it('get their services restarted and health-checked once when the agent starts (rolled back if unhealthy)', async () => {
    const reg = registry();
    const dir = tempDir('agent-after-cli-');
    const store = join(dir, 'store');
    const { services, log } = sentinel(store, dir);
    expect((await cliAsync(['reconcile', '--site', 'alpha', '--registry', reg.dir, '--store', store], { cwd: dir, env })).status).toBe(0);
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote the broken face model');
    expect((await cliAsync(['reconcile', '--site', 'alpha', '--registry', reg.dir, '--store', store], { cwd: dir, env })).status).toBe(0);
    expect(current(store, 'face')).toBe('2025-02-01');
    expect(restarts(log)).toEqual([]); // reconcile restarts no service
    const st = await cliAsync(['status', '--store', store], { cwd: dir, env });
    expect(st.stdout).toMatch(/face .* services not restarted \(2025-02-01 activated by reconcile; an agent restarts and checks them once\)/);

    // The agent starts: the registry has not changed (in sync), but the verdict is owed.
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services });
    await agent.whenIdle();
    expect(restarts(log)).toEqual(['2025-02-01', '2025-01-01']); // restarted, unhealthy, switched back, restarted
    expect(current(store, 'face')).toBe('2025-01-01');
    expect(agent.status().health).toBe('Degraded');
    const { state } = await readState(new StoreLayout(store));
    expect(state.verifying).toEqual([]);
    // The version gone back to is the conflict rule's base again (a later revert to it is in sync, not a conflict).
    expect(state.models.face?.lastApplied).toBe('2025-01-01');
    // Once: the next pass restarts nothing.
    await agent.request('manual', 'test');
    expect(restarts(log)).toHaveLength(2);
    await agent.stop();
  });
});

describe('the first agent --once after a plain reconcile', () => {
  it('says it restarted and checked the services of versions reconcile switched, and does not call them activated', async () => {
    const reg = registry();
    const dir = tempDir('agent-once-after-cli-');
    const store = join(dir, 'store');
    const { services, log } = sentinel(store, dir);
    const plain = await cliAsync(['reconcile', '--site', 'alpha', '--registry', reg.dir, '--store', store], { cwd: dir, env });
    expect(plain.status).toBe(0);
    expect(plain.stdout).toMatch(/^ {2}face\s+- → 2025-01-01\s+activated \(install\)\s+49 KiB fetched$/m);
    // agent.yaml is YAML; JSON is YAML too.
    writeFileSync(join(dir, 'agent.yaml'), JSON.stringify({ site: 'alpha', registry: reg.dir, store, services }));
    const once = await cliAsync(['agent', '--config', 'agent.yaml', '--once'], { cwd: dir, env });
    expect(once.status).toBe(0);
    expect(restarts(log)).toEqual(['2025-01-01']);
    const out = once.stdout;
    expect(out).toMatch(/^ {2}face\s+2025-01-01\s+sentinel restarted and checked \(switched by an earlier pass\)$/m);
    // ssd has no service: nothing was done to it this pass.
    expect(out).toMatch(/^ {2}ssd\s+1\s+in sync$/m);
    expect(out).not.toMatch(/activated/);
    expect(out).toMatch(/^status: changed \(0 changed, services of 1 earlier switch restarted and checked, 0 B fetched, /m);
    // --json keeps its shape (status and changed as before) and says the same in added fields.
    const store2 = join(dir, 'store2');
    expect((await cliAsync(['reconcile', '--site', 'alpha', '--registry', reg.dir, '--store', store2], { cwd: dir, env })).status).toBe(0);
    writeFileSync(join(dir, 'agent2.yaml'), JSON.stringify({ site: 'alpha', registry: reg.dir, store: store2, services: [] }));
    const json = JSON.parse((await cliAsync(['agent', '--config', 'agent2.yaml', '--once', '--json'], { cwd: dir, env })).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ status: 'changed', exitCode: 0, bytesFetched: 0 });
    expect(json.models).toEqual(expect.arrayContaining([
      expect.objectContaining({ model: 'face', outcome: 'activated', owedVerdict: expect.objectContaining({ by: 'reconcile' }) }),
      expect.objectContaining({ model: 'ssd', outcome: 'activated', owedVerdict: expect.objectContaining({ by: 'reconcile' }) }),
    ]));
  });
});

describe('status', () => {
  it('says Progressing (locally and at the hub) while a pass restarts services and checks the versions it switched', async () => {
    const reg = registry();
    const dir = tempDir('agent-progressing-');
    const store = join(dir, 'store');
    const gate = join(dir, 'healthy');
    const th = await startTestHub();
    // Healthy only once the test says so: the pass stays in its health check until then.
    const services = [{ name: 'slow', models: ['face'], health: { command: [node, '-e', 'process.exit(require("fs").existsSync(process.argv[1]) ? 0 : 1)', gate], timeout_s: 30, interval_s: 0.1 } }];
    writeFileSync(gate, '');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, listen: '127.0.0.1:0', hub: th.url });
    await agent.whenIdle();
    expect(agent.status().health).toBe('Ready');
    rmSync(gate);
    reg.setCurrent('face', '2025-03-01');
    reg.commit('promote face 2025-03-01');
    const pass = agent.request('manual', 'test');
    await waitFor(() => agent.status().health === 'Progressing', 'Progressing while the health check runs');
    const local = (await (await fetch(`${agent.url}/status`)).json()) as { health: string; conditions: Array<{ type: string; status: boolean; reason: string; message: string }> };
    expect(local.health).toBe('Progressing');
    expect(local.conditions.find((c) => c.type === 'Ready')).toMatchObject({ status: false, reason: 'Progressing', message: 'switched face 2025-01-01 → 2025-03-01; restarting services and checking their health' });
    const atHub = async (): Promise<string | undefined> => {
      const { sites } = (await (await fetch(`${th.url}/api/v1/sites`)).json()) as { sites: Array<{ site: string; health?: string }> };
      return sites.find((x) => x.site === 'alpha')?.health;
    };
    await waitFor(async () => (await atHub()) === 'Progressing', 'the hub to hear Progressing');
    writeFileSync(gate, '');
    expect((await pass).result.status).toBe('changed');
    expect(agent.status().health).toBe('Ready');
    await waitFor(async () => (await atHub()) === 'Ready', 'the hub to hear Ready again');
    await agent.stop();
  });

  it('a pass refused by the store lock (a gc running) is Failed, not Stale: the registry was not the problem', async () => {
    const reg = registry();
    const store = join(tempDir('agent-locked-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store });
    await agent.whenIdle();
    expect(agent.status().health).toBe('Ready');
    const lock = await acquireLock(join(store, 'lock'), 'gc');
    try {
      const { result } = await agent.request('manual', 'test');
      expect(result.errors[0]).toMatchObject({ code: 'LockedError' });
      const s = agent.status();
      expect(s.health).toBe('Failed');
      expect(s.conditions.find((c) => c.type === 'Stale')).toMatchObject({ status: false });
      expect(s.lastError).toMatch(/LockedError: the store is locked by pid \d+ .*\(gc/);
    } finally {
      await lock.release();
    }
    await agent.request('manual', 'test');
    expect(agent.status().health).toBe('Ready');
    await agent.stop();
  });
});

describe('triggers', () => {
  it('a commit to a local registry is picked up by the watch', async () => {
    const reg = registry();
    const store = join(tempDir('agent-watch-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store }, { watchDebounceMs: 50 });
    await agent.whenIdle();
    reg.setCurrent('face', '2025-03-01');
    reg.commit('promote face 2025-03-01');
    await waitFor(() => current(store, 'face') === '2025-03-01', 'the watch to trigger a pass');
    await agent.whenIdle();
    expect(agent.status().lastPass?.triggers).toContain('watch');
    await agent.stop();
  });

  it('a pin or unpin is applied by a running agent at once (it watches pins.json), and `pin` says so', async () => {
    const reg = registry();
    const dir = tempDir('agent-pin-');
    const store = join(dir, 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, schedule: '0 0 1 1 *' }, { watchDebounceMs: 50 });
    await agent.whenIdle();
    const before = agent.passes;
    const pinned = await cliAsync(['pin', 'face', '2025-03-01', '--store', store], { cwd: dir, env });
    expect(pinned.status).toBe(0);
    expect(pinned.stdout).toMatch(/An agent running on this store activates it within a second \(it watches pins\.json\)/);
    await waitFor(() => current(store, 'face') === '2025-03-01', 'the pin to be applied');
    await agent.whenIdle();
    expect(agent.passes).toBe(before + 1);
    expect(agent.status().lastPass?.triggers).toEqual(['pin']);
    expect(agent.status().models.find((m) => m.model === 'face')?.drift).toMatch(/pinned to 2025-03-01/);
    // Unpinned: the registry speaks again at once (a newer pinned version left behind is a conflict).
    const unpinned = await cliAsync(['unpin', 'face', '--store', store], { cwd: dir, env });
    expect(unpinned.stdout).toMatch(/follows the registry again within a second/);
    await waitFor(() => agent.passes === before + 2, 'the unpin pass');
    await agent.whenIdle();
    expect(agent.status().lastPass).toMatchObject({ triggers: ['pin'], status: 'conflict' });
    await agent.stop();
  });

  it('`reconcile --force` under a running agent: the agent notices at once and restarts and checks the services', async () => {
    const reg = registry();
    const dir = tempDir('agent-force-');
    const store = join(dir, 'store');
    const { services, log } = sentinel(store, dir);
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, schedule: '0 0 1 1 *' }, { watchDebounceMs: 50 });
    await agent.whenIdle();
    // A break-glass pin lifted leaves a newer version active: a conflict the agent leaves alone.
    expect((await cliAsync(['pin', 'face', '2025-03-01', '--store', store], { cwd: dir, env })).status).toBe(0);
    await waitFor(() => current(store, 'face') === '2025-03-01', 'the pin');
    expect((await cliAsync(['unpin', 'face', '--store', store], { cwd: dir, env })).status).toBe(0);
    await waitFor(() => agent.status().lastPass?.status === 'conflict', 'the conflict');
    await agent.whenIdle();
    const before = restarts(log).length;

    // The operator answers with the agent's own config rather than retyping site, registry and store.
    writeFileSync(join(dir, 'agent.yaml'), `site: alpha\nregistry: ${reg.dir}\nstore: ./store\n`);
    const forced = await cliAsync(['reconcile', '--config', 'agent.yaml', '--force'], { cwd: dir, env });
    expect(forced.status, forced.stderr).toBe(0);
    expect(current(store, 'face')).toBe('2025-01-01');
    // No registry change, no schedule: only the nudge reconcile left in the store starts this pass.
    await waitFor(() => restarts(log).length > before, 'the agent to restart the service for the forced version');
    await agent.whenIdle();
    expect(restarts(log).at(-1)).toBe('2025-01-01');
    expect(agent.status().lastPass?.triggers).toEqual(['manual']);
    expect(agent.status().health).toBe('Ready');
    await agent.stop();
  });

  it('webhooks: a burst while a pass runs costs one more pass; bad signatures start none', async () => {
    const reg = registry();
    const dir = tempDir('agent-hook-');
    const store = join(dir, 'store');
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, 'hook-secret\n');
    // A slow restart keeps the pass running while the burst arrives.
    const services = [{ name: 'slow', models: ['face'], restart: [node, '-e', 'setTimeout(()=>{}, 400)'] }];
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, listen: '127.0.0.1:0', webhook_secret_file: secretFile });
    await agent.whenIdle();
    const before = agent.passes;

    const body = JSON.stringify({ ref: 'refs/heads/main' });
    const post = (sig?: string) =>
      fetch(`${agent.url}/api/v1/reconcile`, { method: 'POST', body, headers: sig ? { 'x-hub-signature-256': sig } : {} });
    expect((await post()).status).toBe(401);
    expect((await post(signBody('wrong', body))).status).toBe(401);
    await settle();
    expect(agent.passes).toBe(before);

    reg.setCurrent('face', '2025-03-01');
    reg.commit('promote face 2025-03-01');
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(signBody('hook-secret', body)).then((r) => r.json())));
    expect(answers[0]).toMatchObject({ accepted: true });
    expect(answers.filter((a) => (a as { pass: string }).pass === 'started')).toHaveLength(1);
    await waitFor(() => current(store, 'face') === '2025-03-01', 'the webhook pass');
    await agent.whenIdle();
    // One pass started by the first webhook, at most one more for the other nine.
    expect(agent.passes - before).toBeLessThanOrEqual(2);
    // The commit also moved the registry's refs, so the watch may have joined the queued pass.
    expect(agent.status().lastPass?.triggers).toContain('webhook');
    expect(await (await fetch(`${agent.url}/metrics`)).text()).toMatch(/modelsync_triggers_coalesced_total\{site="alpha"\} [89]/);
    await agent.stop();
  });

  it('the schedule runs passes on a controlled clock', async () => {
    const reg = registry();
    const store = join(tempDir('agent-cron-'), 'store');
    const clock = new ManualClock(new Date(2025, 2, 10, 9, 7, 0));
    const agent = await startAgent({ site: 'alpha', registry: `${reg.dir}/.git`, store, schedule: '*/10 * * * *', jitter_s: 60 }, { clock, random: () => 0.5 });
    await agent.whenIdle();
    expect(agent.passes).toBe(1);
    expect(agent.status().nextScheduledAt).toBe(new Date(2025, 2, 10, 9, 10, 30).toISOString());
    await clock.advanceTo(new Date(2025, 2, 10, 9, 10, 29));
    await agent.whenIdle();
    expect(agent.passes).toBe(1);
    await clock.advanceTo(new Date(2025, 2, 10, 9, 10, 30));
    await waitFor(() => agent.passes === 2, 'the scheduled pass');
    await agent.whenIdle();
    expect(agent.status().lastPass?.triggers).toEqual(['schedule']);
    expect(agent.status().nextScheduledAt).toBe(new Date(2025, 2, 10, 9, 20, 30).toISOString());
    for (const minute of [20, 30, 40, 50]) {
      await clock.advanceTo(new Date(2025, 2, 10, 9, minute, 30));
      await waitFor(() => agent.passes === 2 + minute / 10 - 1, `the ${minute} slot`);
      await agent.whenIdle();
    }
    expect(agent.passes).toBe(6);
    // The site file's schedule would apply if agent.yaml did not set one.
    expect(agent.status().schedule).toBe('*/10 * * * *');
    await agent.stop();
  });
});

describe('self-heal', () => {
  it('a deleted model file is restored from its verified object', async () => {
    const reg = registry();
    const store = join(tempDir('agent-heal-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store }, { selfHealDebounceMs: 50 });
    await agent.whenIdle();
    const file = join(store, 'models/face/current/model.bin');
    rmSync(file);
    await waitFor(() => existsSync(file), 'the file to come back');
    await waitFor(() => agent.status().selfHeal.restored === 1, 'the heal to be recorded');
    expect(readFileSync(file).equals(bytes(50_000, 1))).toBe(true);
    const s = agent.status();
    expect(s.selfHeal.recent).toEqual([expect.objectContaining({ model: 'face', version: '2025-01-01', file: 'model.bin', kind: 'deleted', by: 'watch', healed: true })]);
    expect(s.lastPass?.triggers).toEqual(['selfheal']);
    expect(await agent.status().models.find((m) => m.model === 'face')?.active).toBe('2025-01-01');
    await agent.stop();
  });

  it('a file written in place (corrupting its object) is noticed and fetched again', async () => {
    const reg = registry();
    const store = join(tempDir('agent-heal2-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store }, { selfHealDebounceMs: 50 });
    await agent.whenIdle();
    const file = join(store, 'models/ssd/current/w.bin');
    // Same size, different bytes, same inode: the store's stat checks cannot see this.
    chmodSync(file, 0o644);
    const data = readFileSync(file);
    data[100] = data[100]! ^ 0xff;
    writeFileSync(file, data);
    await waitFor(() => agent.status().selfHeal.restored === 1, 'the heal');
    expect(readFileSync(file).equals(bytes(20_000, 4))).toBe(true);
    expect(agent.status().selfHeal.recent[0]).toMatchObject({ model: 'ssd', file: 'w.bin', kind: 'modified', healed: true });
    expect(agent.status().selfHeal.recent[0]!.quarantined).toHaveLength(1);
    await agent.stop();
  });
});
