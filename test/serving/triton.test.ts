/**
 * End to end, Triton rules (issue 17): explicit model control, config.pbtxt's
 * version_policy. A version that loads but answers with the wrong shape is
 * caught by the inference smoke test, and the view goes back to the N that
 * served the version before (still on disk), the server told again. A
 * config.pbtxt shipped with a version is the base of the model's config.
 * And `modelsync agent --once` from an agent.yaml exits 4 (degraded) when a
 * version does not load, with the smoke test's URL taken from the view.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { garbage, onnxModel } from '../helpers/inference-server/models.ts';
import { startInferenceServer, type InferenceServer } from '../helpers/inference-server/server.ts';
import { captureLogger, current, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { onnxRegistry, publish, smokeRequest, versionDirs } from './helpers.ts';

const env = isolatedGitEnv();
const servers: InferenceServer[] = [];
afterAll(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

describe('a Triton view kept by the agent', () => {
  it('loads each N explicitly; a wrong-shaped answer rolls back to the N kept on disk', { timeout: 120_000 }, async () => {
    const reg = onnxRegistry('serving-triton-reg-', env, 'yolo');
    const site = tempDir('serving-triton-');
    const store = join(site, 'store');
    const repo = join(site, 'triton');
    const triton = await startInferenceServer({ kind: 'triton', repo });
    servers.push(triton);
    const log = captureLogger();
    const agent = await startAgent({
      site: 'alpha', registry: reg.dir, store, schedule: '0 0 1 1 *',
      serving: [{ kind: 'triton', dir: repo, models: ['yolo'], url: triton.url, timeout_s: 5 }],
      services: [{ name: 'triton', models: ['yolo'], health: { infer: { model: 'yolo', request: smokeRequest(site), url: triton.url, expect: { outputs: { Y: [1, 4] }, finite: true } }, timeout_s: 2, interval_s: 0.2 } }],
    }, { logger: log.logger });
    await agent.whenIdle();
    expect(agent.status().health).toBe('Ready');
    expect(triton.available('yolo')).toEqual([1]);
    expect(readFileSync(join(repo, 'yolo/config.pbtxt'), 'utf8')).toBe('name: "yolo"\nbackend: "onnxruntime"\nversion_policy: { specific: { versions: [1] } }\n');
    expect(triton.log).toContain('POST /v2/repository/models/yolo/load 200');

    // v2 ships its own config.pbtxt (with a policy of its own the agent replaces) and loads as 2.
    publish(reg, 'yolo', '2', {
      'model.onnx': onnxModel({ op: 'add', add: 2, shape: [1, 4] }),
      'config.pbtxt': 'name: "yolo"\nbackend: "onnxruntime"\nmax_batch_size: 0\nversion_policy: { latest { num_versions: 2 } }\ninstance_group [ { kind: KIND_CPU } ]\n',
    });
    await agent.request('manual', 'v2');
    await waitFor(() => triton.available('yolo').join() === '2', 'yolo 2 served');
    expect(readFileSync(join(repo, 'yolo/config.pbtxt'), 'utf8')).toBe('name: "yolo"\nbackend: "onnxruntime"\nmax_batch_size: 0\ninstance_group [ { kind: KIND_CPU } ]\nversion_policy: { specific: { versions: [2] } }\n');

    // v3 loads (it is a valid model) but answers [4, 1]: the smoke test fails, back to 2 (not a new N).
    publish(reg, 'yolo', '3', { 'model.onnx': onnxModel({ op: 'transpose', shape: [1, 4] }) });
    await agent.request('manual', 'v3');
    await waitFor(() => agent.status().health === 'Degraded', 'Degraded');
    expect(log.text()).toMatch(/health check failed: POST [^"]*\/v2\/models\/yolo\/infer: output Y has shape \[4, 1\], expected \[1, 4\]/);
    expect(current(store, 'yolo')).toBe('2');
    await waitFor(() => triton.available('yolo').join() === '2', 'yolo back on 2');
    expect(versionDirs(repo, 'yolo')).toEqual([1, 2]);
    expect(readFileSync(join(repo, 'yolo/config.pbtxt'), 'utf8')).toMatch(/version_policy: \{ specific: \{ versions: \[2\] \} \}\n$/);
    const r = await triton.infer('yolo', [1, 2, 3, 4], [1, 4]);
    expect((r.body.outputs as Array<{ data: number[] }>)[0]!.data).toEqual([3, 4, 5, 6]);
    await agent.stop();
  });

  it('`agent --once` from agent.yaml exits 4 when the new version does not load, and the server is back on the old one', { timeout: 120_000 }, async () => {
    const reg = onnxRegistry('serving-once-reg-', env, 'yolo');
    const site = tempDir('serving-once-');
    const triton = await startInferenceServer({ kind: 'triton', repo: join(site, 'triton') });
    servers.push(triton);
    smokeRequest(site);
    // Relative paths (store, dir, request) are relative to agent.yaml; the smoke test's url comes from the view.
    writeFileSync(join(site, 'agent.yaml'), [
      'site: alpha', `registry: ${reg.dir}`, 'store: store', 'verify_interval_s: 0',
      'serving:',
      `  - {kind: triton, dir: triton, models: [yolo], url: "${triton.url}", timeout_s: 3}`,
      'services:',
      '  - name: triton',
      '    models: [yolo]',
      '    health: {infer: {model: yolo, request: smoke.json, expect: {outputs: {Y: [1, 4]}, finite: true}}, timeout_s: 2}',
      '',
    ].join('\n'));
    const first = await cliAsync(['agent', '--once', '--config', 'agent.yaml'], { cwd: site, env });
    expect(first.status, first.stderr).toBe(0);
    expect(triton.available('yolo')).toEqual([1]);

    publish(reg, 'yolo', '2', { 'model.onnx': garbage() });
    const second = await cliAsync(['agent', '--once', '--config', 'agent.yaml', '--log-level', 'info'], { cwd: site, env });
    expect(second.status).toBe(4);
    expect(second.stderr).toMatch(/triton view [^"]*: yolo version 2 did not load/);
    expect(second.stderr).toContain('site DEGRADED: yolo 2 (back to 1) failed its health check and was rolled back');
    expect(current(join(site, 'store'), 'yolo')).toBe('1');
    expect(triton.available('yolo')).toEqual([1]);
    expect(versionDirs(join(site, 'triton'), 'yolo')).toEqual([1]);
  });
});
