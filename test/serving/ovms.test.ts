/**
 * End to end, OVMS rules (issue 17): a real agent keeps an OVMS repository
 * (numeric version directories, config.json with a `specific` policy) that a
 * real inference server (onnxruntime-node) reloads and serves. v1 is served
 * as 1; v2 as 2 with 1 kept; a broken v3 does not load, so the site goes back
 * to 2 by itself and is Degraded; a `git revert` back to v1 is served as a
 * new number, 4. The operator's other models and keys in config.json stay.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { garbage, onnxModel } from '../helpers/inference-server/models.ts';
import { startInferenceServer, type InferenceServer } from '../helpers/inference-server/server.ts';
import { captureLogger, current, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { inode, onnxRegistry, publish, smokeRequest, versionDirs } from './helpers.ts';

const env = isolatedGitEnv();
const servers: InferenceServer[] = [];
afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

const answer = async (s: InferenceServer): Promise<unknown> => {
  const r = await s.infer('det', [1, 2, 3, 4], [1, 4]);
  return r.status === 200 ? (r.body.outputs as Array<{ data: number[] }>)[0]!.data : r.status;
};

describe('an OVMS view kept by the agent', () => {
  it('serves each activation as a new N, falls back when a version does not load, and keeps the operator\'s config', { timeout: 120_000 }, async () => {
    const reg = onnxRegistry('serving-ovms-reg-', env, 'det');
    const site = tempDir('serving-ovms-');
    const store = join(site, 'store');
    const view = join(site, 'models');
    mkdirSync(view);
    const configFile = join(view, 'config.json');
    // The operator's file: another model and a setting of det's that the agent must keep.
    writeFileSync(configFile, JSON.stringify({
      monitoring: { metrics: { enable: true } },
      model_config_list: [
        { config: { name: 'det', base_path: '/old/sidecar/det', target_device: 'CPU', nireq: 2 } },
      ],
    }));
    const ovms = await startInferenceServer({ kind: 'ovms', config: configFile });
    servers.push(ovms);
    const smoke = smokeRequest(site);
    const log = captureLogger();
    const agent = await startAgent({
      site: 'alpha', registry: reg.dir, store, schedule: '0 0 1 1 *',
      serving: [{ kind: 'ovms', dir: view, models: ['det'], url: ovms.url, timeout_s: 5 }],
      services: [{ name: 'ovms', models: ['det'], health: { infer: { model: 'det', request: smoke, url: ovms.url, expect: { outputs: { Y: [1, 4] }, finite: true } }, timeout_s: 3, interval_s: 0.2 } }],
    }, { logger: log.logger });
    await agent.whenIdle();

    // v1 → N=1, hard links into the store, served.
    expect(agent.status().health).toBe('Ready');
    expect(versionDirs(view, 'det')).toEqual([1]);
    expect(inode(join(view, 'det/1/model.onnx'))).toBe(inode(join(store, 'models/det/1/model.onnx')));
    expect(ovms.available('det')).toEqual([1]);
    expect(await answer(ovms)).toEqual([2, 3, 4, 5]);
    expect(agent.status().services).toEqual(expect.arrayContaining([
      expect.objectContaining({ service: `ovms view ${view}`, models: ['det'], phase: 'switch', action: 'reload', actionOk: true, health: expect.objectContaining({ ok: true, message: 'version 1 ready' }) }),
    ]));
    const cfg1 = JSON.parse(readFileSync(configFile, 'utf8'));
    expect(cfg1.monitoring).toEqual({ metrics: { enable: true } });
    expect(cfg1.model_config_list).toEqual([
      { config: { name: 'det', base_path: join(view, 'det'), target_device: 'CPU', nireq: 2, model_version_policy: { specific: { versions: [1] } } } },
    ]);

    // v2 → N=2 served, N=1 kept for the instant fallback.
    publish(reg, 'det', '2', { 'model.onnx': onnxModel({ op: 'add', add: 2, shape: [1, 4] }) });
    expect((await agent.request('manual', 'v2')).result.status).not.toBe('degraded');
    expect(versionDirs(view, 'det')).toEqual([1, 2]);
    expect(ovms.available('det')).toEqual([2]);
    expect(await answer(ovms)).toEqual([3, 4, 5, 6]);

    // A broken v3: OVMS cannot load it; nobody types a command and det is back on 2, the site Degraded.
    const v3 = publish(reg, 'det', '3', { 'model.onnx': garbage() });
    // (The registry is a local path: its file watch may have started that pass before this request.)
    await agent.request('manual', 'v3');
    await waitFor(() => agent.status().health === 'Degraded', 'Degraded');
    const failed = log.lines().find((l) => l.msg.startsWith('site DEGRADED'));
    expect(failed?.msg).toBe("site DEGRADED: det 3 (back to 2) failed its health check and was rolled back");
    expect(log.text()).toMatch(/ovms view [^"]* version 3 did not load: POST [^"]*\/v1\/config\/reload answered 500: [^"]*protobuf parsing failed/i);
    expect(current(store, 'det')).toBe('2');
    expect(ovms.available('det')).toEqual([2]);
    expect(await answer(ovms)).toEqual([3, 4, 5, 6]);
    expect(JSON.parse(readFileSync(configFile, 'utf8')).model_config_list[0].config.model_version_policy).toEqual({ specific: { versions: [2] } });
    expect(versionDirs(view, 'det')).toEqual([1, 2]);

    // git revert of v3, then of v2: v1 again, served as a new number (4), never as the old 1 under another meaning.
    reg.git('revert', '--no-edit', v3);
    expect((await agent.request('manual', 'revert v3')).result.status).not.toBe('degraded');
    expect(agent.status().health).toBe('Ready');
    reg.git('revert', '--no-edit', 'HEAD~2');
    expect((await agent.request('manual', 'revert v2')).result.status).not.toBe('degraded');
    expect(current(store, 'det')).toBe('1');
    expect(versionDirs(view, 'det')).toEqual([2, 4]);
    expect(ovms.available('det')).toEqual([4]);
    expect(await answer(ovms)).toEqual([2, 3, 4, 5]);
    expect(ovms.log).toContain('POST /v1/config/reload 500');
    await agent.stop();
  });
});
