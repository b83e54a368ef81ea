/**
 * Maintenance windows end to end, on a controlled clock: outside the window
 * the agent fetches and verifies the new version but does not switch or
 * restart, and reports Waiting (window); at the window's start it switches
 * with nothing left to fetch; a rollback (the registry going back) outside
 * the window is applied at once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry, sha256 } from '../reconcile/helpers/registry.ts';
import { ManualClock } from './helpers/manual-clock.ts';
import { bytes, current, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

describe('maintenance windows', () => {
  it('fetch outside the window, switch at its start, roll back at once outside it', async () => {
    const reg = TestRegistry.init(tempDir('win-reg-'), env);
    const v2 = bytes(80_000, 2);
    reg.addVersion('face', '1', { 'model.bin': bytes(80_000, 1) });
    reg.addVersion('face', '2', { 'model.bin': v2 });
    reg.setCurrent('face', '1');
    // Weeknights 02:00-05:00 in Berlin (UTC+1 in January).
    reg.site('alpha', { windows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '02:00', end: '05:00', tz: 'Europe/Berlin' }] });
    reg.commit('face 1');

    const dir = tempDir('win-agent-');
    const store = join(dir, 'store');
    const log = join(dir, 'restarts.log');
    const services = [{
      name: 'sentinel', models: ['face'],
      restart: [node, '-e', 'require("fs").appendFileSync(process.argv[1], require("fs").readlinkSync(process.argv[2])+"\\n")', log, join(store, 'models/face/current')],
    }];
    // Wednesday 2026-01-14 12:00 UTC = 13:00 in Berlin: outside the window.
    // Bytes fetched by every pass (a file watch on the registry may run a pass before the test asks for one).
    let fetched = 0;
    const clock = new ManualClock(new Date('2026-01-14T12:00:00Z'));
    const agent = await startAgent({ site: 'alpha', registry: `${reg.dir}/.git`, store, services }, { clock, random: () => 0, onPass: (o) => void (fetched += o.result.bytesFetched) });
    await agent.whenIdle();
    // A first install starts the service too, so it waits for the window like an upgrade.
    expect(current(store, 'face')).toBeUndefined();
    expect(agent.health()).toBe('Waiting');
    await clock.advanceTo(new Date('2026-01-15T01:00:00Z'));
    await waitFor(() => current(store, 'face') === '1', 'install of 1 at the window');
    await agent.whenIdle();
    expect(agent.health()).toBe('Ready');

    // Thursday 10:00 UTC: outside the window. Promote 2.
    await clock.advanceTo(new Date('2026-01-15T10:00:00Z'));
    reg.setCurrent('face', '2');
    const promoted = reg.commit('promote face 2');
    fetched = 0;
    await agent.request('manual', 'test');
    await agent.whenIdle();
    const waiting = agent.status();
    expect(current(store, 'face')).toBe('1');
    expect(waiting.health).toBe('Waiting');
    expect(waiting.conditions.find((c) => c.type === 'Waiting')).toMatchObject({ status: true, reason: 'Window' });
    expect(fetched).toBe(v2.length);
    const oid = sha256(v2);
    expect(existsSync(join(store, 'objects/sha256', oid.slice(0, 2), oid.slice(2, 4), oid))).toBe(true);
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['1']);

    // Friday 01:00 UTC = 02:00 in Berlin: the window opens, the agent switches without fetching again.
    fetched = 0;
    await clock.advanceTo(new Date('2026-01-16T01:00:00Z'));
    await waitFor(() => current(store, 'face') === '2', 'the switch at the window start');
    await agent.whenIdle();
    expect(fetched).toBe(0);
    expect(agent.status().lastPass?.triggers).toEqual(['schedule']);
    expect(agent.health()).toBe('Ready');
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['1', '2']);

    // Friday 12:00 UTC, outside the window: a revert of the promotion is applied at once.
    await clock.advanceTo(new Date('2026-01-16T12:00:00Z'));
    reg.git('revert', '--no-edit', promoted);
    await agent.request('manual', 'test');
    await agent.whenIdle();
    expect(current(store, 'face')).toBe('1');
    expect(agent.health()).toBe('Ready');
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual(['1', '2', '1']);
    await agent.stop();
  });
});
