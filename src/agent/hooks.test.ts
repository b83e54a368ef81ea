import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { silentLogger } from '../log.ts';
import type { ServiceSpec } from '../registry/schema.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { affectedServices, buildActivationHooks, rollbackHealthSpec } from './hooks.ts';

const node = process.execPath;
const svc = (name: string, models: string[], extra: Partial<ServiceSpec> = {}): ServiceSpec => ({ name, models, ...extra });

describe('affectedServices', () => {
  it('picks each service using a changed model once, in agent.yaml order', () => {
    const services = [svc('a', ['x']), svc('b', ['y', 'z']), svc('c', ['z', 'x'])];
    expect(affectedServices(services, ['z', 'x']).map((s) => s.name)).toEqual(['a', 'b', 'c']);
    expect(affectedServices(services, ['y']).map((s) => s.name)).toEqual(['b']);
    expect(affectedServices(services, ['w'])).toEqual([]);
  });
});

describe('buildActivationHooks', () => {
  it('restarts only services whose models changed, then health-checks them', async () => {
    const dir = tempDir('modelsync-hooks-');
    const log = join(dir, 'log');
    const record = (name: string): string[] => [node, '-e', 'require("fs").appendFileSync(process.argv[1], process.argv[2]+"\\n")', log, name];
    const hooks = buildActivationHooks({
      services: [
        svc('sentinel', ['face'], { restart: record('sentinel'), health: { command: [node, '-e', 'process.exit(0)'], timeout_s: 5, interval_s: 0.1 } }),
        svc('ovms', ['ssd'], { restart: record('ovms') }),
        svc('broken', ['face'], { restart: [node, '-e', 'process.exit(2)'] }),
      ],
      fetch, clock: systemClock, logger: silentLogger,
    });
    const { unhealthy } = await hooks.afterSwitch([{ model: 'face', version: '2', from: '1', currentDir: '/s/models/face/current' }]);
    expect(readFileSync(log, 'utf8')).toBe('sentinel\n');
    expect(unhealthy).toEqual([{ service: 'broken', models: ['face'], reason: expect.stringMatching(/exited with 2/) }]);
    expect(hooks.reports.map((r) => [r.service, r.actionOk, r.health?.ok])).toEqual([['sentinel', true, true], ['broken', false, undefined]]);
  });

  it('a template that did not render makes the services of its models unhealthy', async () => {
    const hooks = buildActivationHooks({
      services: [svc('sentinel', ['face']), svc('ovms', ['ssd'])],
      fetch, clock: systemClock, logger: silentLogger,
      renderTemplates: async () => [{ models: ['face'], message: 'templates/x.j2:3:7: undefined value' }],
    });
    const { unhealthy } = await hooks.afterSwitch([{ model: 'face', version: '2', currentDir: '/c' }, { model: 'ssd', version: '2', currentDir: '/d' }]);
    expect(unhealthy).toEqual([{ service: 'sentinel', models: ['face'], reason: 'templates/x.j2:3:7: undefined value' }]);
  });

  it('bounds the check after a rollback (for the record) to half the timeout, at least 5 s', async () => {
    // A clock on which every wait passes at once, and a service that never becomes ready.
    let t = 0;
    const clock: Clock = {
      now: () => t,
      setTimeout: (fn, ms) => {
        t += ms;
        return setImmediate(fn) as unknown as TimerHandle;
      },
      clearTimeout: (h) => {
        if (h) clearImmediate(h as unknown as NodeJS.Immediate);
      },
    };
    const notReady = (async () => new Response('starting', { status: 503 })) as typeof fetch;
    const hooks = buildActivationHooks({
      services: [svc('ovms', ['ssd'], { health: { http: 'http://127.0.0.1:9/ready', timeout_s: 60, interval_s: 1 } })],
      fetch: notReady, clock, logger: silentLogger,
    });
    await hooks.afterSwitch([{ model: 'ssd', version: '2', from: '1', currentDir: '/c' }]);
    await hooks.afterRollback([{ model: 'ssd', version: '1', from: '2', currentDir: '/c' }]);
    const [sw, rb] = hooks.reports;
    expect(sw).toMatchObject({ phase: 'switch', health: { ok: false, message: expect.stringMatching(/ in 60s\)$/) } });
    expect(rb).toMatchObject({ phase: 'rollback', health: { ok: false, message: expect.stringMatching(/ in 30s\)$/) } });
    expect(rb!.health!.ms).toBeLessThanOrEqual(30_000);
    expect(rollbackHealthSpec({ timeout_s: 4 }).timeout_s).toBe(4);
    expect(rollbackHealthSpec({ timeout_s: 8 }).timeout_s).toBe(5);
  });
});
