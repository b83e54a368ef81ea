import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { garbage, onnxModel } from '../../test/helpers/inference-server/models.ts';
import { startInferenceServer, type InferenceServer } from '../../test/helpers/inference-server/server.ts';
import { tellRuntime, waitReady, type RuntimeDeps } from './runtime.ts';

const deps: RuntimeDeps = { fetch, now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

const policy = (v: number): string => JSON.stringify({ model_config_list: [{ config: { name: 'm', base_path: join(dir, 'm'), model_version_policy: { specific: { versions: [v] } } } }] });
let dir: string;

describe('telling a real (test) OVMS-rules server and asking for readiness', () => {
  let server: InferenceServer;
  beforeAll(async () => {
    dir = tempDir('modelsync-runtime-');
    mkdirSync(join(dir, 'm/1'), { recursive: true });
    mkdirSync(join(dir, 'm/2'), { recursive: true });
    writeFileSync(join(dir, 'm/1/model.onnx'), onnxModel({ op: 'add', add: 1, shape: [1, 4] }));
    writeFileSync(join(dir, 'm/2/model.onnx'), garbage());
    writeFileSync(join(dir, 'config.json'), policy(1));
    server = await startInferenceServer({ kind: 'ovms', config: join(dir, 'config.json') });
  });
  afterAll(async () => server.stop());

  it('is ready on the version loaded, by version and by model', async () => {
    expect(await tellRuntime('ovms', server.url, 'm', 5000, deps)).toEqual({ ok: true, message: 'ok' });
    expect(await waitReady(server.url, 'm', 1, 2000, 100, deps)).toEqual({ ok: true, message: 'ready', tries: 1 });
    expect((await waitReady(server.url, 'm', undefined, 2000, 100, deps)).ok).toBe(true);
  });

  it('says why when a version does not load, with the server\'s own words, after retrying until the timeout', async () => {
    writeFileSync(join(dir, 'config.json'), policy(2));
    const told = await tellRuntime('ovms', server.url, 'm', 5000, deps);
    expect(told.ok).toBe(false);
    expect(told.message).toMatch(/^POST http:\/\/127\.0\.0\.1:\d+\/v1\/config\/reload answered 500: Reloading config file failed\. m version 2: .*protobuf parsing failed/i);
    const ready = await waitReady(server.url, 'm', 2, 600, 100, deps);
    expect(ready.ok).toBe(false);
    expect(ready.tries).toBeGreaterThan(2);
    expect(ready.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/v2\/models\/m\/versions\/2\/ready answered 400: model is not ready \(\d+ tries in 1s\)$/);
  });

  it('reports a server that is not there', async () => {
    const r = await tellRuntime('triton', 'http://127.0.0.1:9', 'm', 1000, deps);
    expect(r.ok).toBe(false);
    expect(r.message).toMatch(/^POST http:\/\/127\.0\.0\.1:9\/v2\/repository\/models\/m\/load: /);
  });
});
