/**
 * Adding `serving:` to a site that already runs its models (the OVMS
 * sidecar's site, switched over): nothing is switched, yet the first pass
 * builds the view from what the store has active and the server serves it.
 * And a version directory deleted by hand is rebuilt (as a new N) at the
 * next pass.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startInferenceServer, type InferenceServer } from '../helpers/inference-server/server.ts';
import { current, startAgent } from '../agent/helpers/agent.ts';
import { onnxRegistry, versionDirs } from './helpers.ts';

const env = isolatedGitEnv();
const servers: InferenceServer[] = [];
afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

describe('a view added to a site that already runs its models', () => {
  it('is built from the active version at the next pass, and rebuilt when its directory is deleted', { timeout: 60_000 }, async () => {
    const reg = onnxRegistry('serving-adopt-reg-', env, 'det');
    const site = tempDir('serving-adopt-');
    const store = join(site, 'store');
    const fields = { site: 'alpha', registry: reg.dir, store, schedule: '0 0 1 1 *' };
    const before = await startAgent(fields);
    await before.whenIdle();
    expect(current(store, 'det')).toBe('1');
    await before.stop();

    const view = join(site, 'models');
    const ovms = await startInferenceServer({ kind: 'ovms', config: join(view, 'config.json') });
    servers.push(ovms);
    const agent = await startAgent({ ...fields, serving: [{ kind: 'ovms', dir: view, models: ['det'], url: ovms.url, timeout_s: 5 }] });
    await agent.whenIdle();
    expect(agent.status().lastPass?.changed).toEqual([]);
    expect(versionDirs(view, 'det')).toEqual([1]);
    expect(ovms.available('det')).toEqual([1]);

    rmSync(join(view, 'det/1'), { recursive: true });
    await agent.request('manual', 'after the delete');
    expect(versionDirs(view, 'det')).toEqual([2]);
    expect(ovms.available('det')).toEqual([2]);
    await agent.stop();
  });
});
