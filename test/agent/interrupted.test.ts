/**
 * A pass interrupted while services are being health-checked (SIGTERM from
 * systemd, a crash): the verdict is owed, not failed. The new version stays
 * active, nothing is marked Degraded, and the next pass (the next start of
 * the agent) restarts and checks those services again, rolling back only on
 * a real failure.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readState, StoreLayout } from '../../src/store/index.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { current, faceRegistry, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

describe('a pass interrupted during health checks', () => {
  it('keeps the new version, owes the verdict, and the next start restarts and checks again', async () => {
    const reg = faceRegistry('agent-int-reg-', env, { versions: ['1', '2'], size: 20_000 });
    const dir = tempDir('agent-int-');
    const store = join(dir, 'store');
    const log = join(dir, 'restarts.log');
    const slow = join(dir, 'slow.flag');
    const fail = join(dir, 'fail.flag');
    const services = [{
      name: 'sentinel',
      models: ['face'],
      restart: [node, '-e', 'require("fs").appendFileSync(process.argv[1], require("fs").readlinkSync(process.argv[2])+"\\n")', log, join(store, 'models/face/current')],
      // Slow while slow.flag exists (the service takes its time to come up); fails while fail.flag exists.
      health: {
        command: [node, '-e', 'const fs=require("fs");if(fs.existsSync(process.argv[1]))setTimeout(()=>{},60000);else process.exit(fs.existsSync(process.argv[2])?1:0)', slow, fail],
        timeout_s: 30,
        interval_s: 0.2,
      },
    }];
    const restarts = (): string[] => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);

    const first = await startAgent({ site: 'alpha', registry: reg.dir, store, services });
    await first.whenIdle();
    expect(restarts()).toEqual(['1']);

    reg.setCurrent('face', '2');
    reg.commit('v2');
    writeFileSync(slow, '');
    const pending = first.request('manual', 'test');
    await waitFor(() => restarts().length === 2, 'the restart of the new version');
    await new Promise((r) => setTimeout(r, 300)); // the health check is running now
    await first.stop(); // SIGTERM
    const { result } = await pending;
    expect(result.status).not.toBe('degraded');
    expect(result.degraded).toEqual([]);
    expect(result.warnings.join('\n')).toMatch(/interrupted before the health of face 2 was judged/);
    expect(current(store, 'face')).toBe('2');
    const { state } = await readState(new StoreLayout(store));
    expect(state.degraded).toEqual([]);
    expect(state.verifying).toEqual([expect.objectContaining({ model: 'face', version: '2', from: '1' })]);
    expect(state.models.face?.lastApplied).toBe('1'); // not judged yet

    // The agent comes back; the service turns out to be broken: checked again, rolled back, Degraded.
    rmSync(slow);
    writeFileSync(fail, '');
    const second = await startAgent({ site: 'alpha', registry: reg.dir, store, services: services.map((s) => ({ ...s, health: { ...s.health, timeout_s: 1 } })) });
    await second.whenIdle();
    expect(restarts()).toEqual(['1', '2', '2', '1']);
    expect(current(store, 'face')).toBe('1');
    expect(second.status().health).toBe('Degraded');
    const after = (await readState(new StoreLayout(store))).state;
    expect(after.verifying).toEqual([]);
    expect(after.degraded).toEqual([expect.objectContaining({ model: 'face', version: '2' })]);
    await second.stop();
  });
});
