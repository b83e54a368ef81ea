import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { onnxModel } from '../../test/helpers/inference-server/models.ts';
import { startInferenceServer, type InferenceServer } from '../../test/helpers/inference-server/server.ts';
import { checkInfer, judgeAnswer } from './health-infer.ts';
import { checkHealth } from './health.ts';

const expect4 = (extra: object = {}) => ({ outputs: { Y: [1, 4] }, finite: false, tolerance: 1e-4, ...extra });

describe('judgeAnswer', () => {
  it('checks names, shapes (-1 for any), counts, finiteness and values', () => {
    const out = (shape: number[], data: unknown[]) => ({ outputs: [{ name: 'Y', shape, datatype: 'FP32', data }] });
    expect(judgeAnswer(out([1, 4], [1, 2, 3, 4]), expect4())).toBe('');
    expect(judgeAnswer(out([1, 4], [1, 2, 3, 4]), { ...expect4(), outputs: { Y: [-1, 4] } })).toBe('');
    expect(judgeAnswer(out([4, 1], [1, 2, 3, 4]), expect4())).toBe('output Y has shape [4, 1], expected [1, 4]');
    expect(judgeAnswer({ outputs: [{ name: 'Z', shape: [1] }] }, expect4())).toBe('no output "Y" (the answer has "Z")');
    expect(judgeAnswer(out([1, 4], [1, null, 3, 4]), expect4({ finite: true }))).toBe('output Y value 1 is null, not a finite number');
    expect(judgeAnswer(out([1, 4], [1, 2, 3]), expect4({ finite: true }))).toBe('output Y has 3 values for shape [1, 4]');
    expect(judgeAnswer(out([1, 4], [1, 2, 3, 4.001]), expect4({ values: { Y: [1, 2, 3, 4] }, tolerance: 0.01 }))).toBe('');
    expect(judgeAnswer(out([1, 4], [1, 2, 3, 4.1]), expect4({ values: { Y: [1, 2, 3, 4] }, tolerance: 0.01 }))).toBe('output Y value 3 is 4.1, expected 4 ± 0.01');
    expect(judgeAnswer({}, expect4())).toBe('the answer has no "outputs" list');
  });
});

describe('checkInfer against a real inference server', () => {
  let server: InferenceServer;
  let dir: string;
  beforeAll(async () => {
    dir = tempDir('modelsync-infer-');
    const repo = join(dir, 'triton');
    for (const [name, model] of [['add', onnxModel({ op: 'add', add: 0.5, shape: [1, 4] })], ['log', onnxModel({ op: 'log', shape: [1, 4] })]] as const) {
      mkdirSync(join(repo, name, '1'), { recursive: true });
      writeFileSync(join(repo, name, '1', 'model.onnx'), model);
      writeFileSync(join(repo, name, 'config.pbtxt'), `name: "${name}"\nbackend: "onnxruntime"\n`);
    }
    server = await startInferenceServer({ kind: 'triton', repo });
    for (const m of ['add', 'log']) expect((await fetch(`${server.url}/v2/repository/models/${m}/load`, { method: 'POST' })).status).toBe(200);
    writeFileSync(join(dir, 'smoke.json'), JSON.stringify({ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, -2, 3, 4] }] }));
  });
  afterAll(async () => server.stop());

  it('passes a model that answers as expected, values within the tolerance', async () => {
    const spec = { model: 'add', request: join(dir, 'smoke.json'), url: server.url, expect: expect4({ finite: true, values: { Y: [1.5, -1.5, 3.5, 4.5] } }) };
    expect(await checkInfer(spec, 5000, { fetch })).toEqual({ message: '', timedOut: false });
  });

  it('fails a model whose answer is not finite, and one that is not loaded, saying why', async () => {
    const nan = await checkInfer({ model: 'log', request: join(dir, 'smoke.json'), url: server.url, expect: expect4({ finite: true }) }, 5000, { fetch });
    expect(nan.message).toBe(`POST ${server.url}/v2/models/log/infer: output Y value 1 is null, not a finite number`);
    const missing = await checkInfer({ model: 'nope', request: join(dir, 'smoke.json'), url: server.url, expect: expect4() }, 5000, { fetch });
    expect(missing.message).toBe(`POST ${server.url}/v2/models/nope/infer answered 404: model nope is not available`);
  });

  it('fails on a request file that is missing or is no inference request, before sending anything', async () => {
    writeFileSync(join(dir, 'bad.json'), '{"input": []}');
    expect((await checkInfer({ model: 'add', request: join(dir, 'gone.json'), url: server.url, expect: expect4() }, 5000, { fetch })).message).toMatch(/^infer: cannot read the request .*gone\.json: ENOENT/);
    expect((await checkInfer({ model: 'add', request: join(dir, 'bad.json'), url: server.url, expect: expect4() }, 5000, { fetch })).message).toMatch(/bad\.json is not a KServe v2 inference request/);
  });

  it('is one of the health checks, retried until its timeout', async () => {
    const r = await checkHealth({ infer: { model: 'log', request: join(dir, 'smoke.json'), url: server.url, expect: expect4({ finite: true }) }, timeout_s: 0.6, interval_s: 0.2 }, { fetch });
    expect(r.ok).toBe(false);
    expect(r.tries).toBeGreaterThan(1);
    expect(r.message).toMatch(/output Y value 1 is null, not a finite number \(\d+ tries in 0\.6s\)$/);
  });
});
