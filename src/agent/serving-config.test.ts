import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { loadAgentConfig } from './config.ts';
import { guardedPaths } from './guarded-paths.ts';

const head = 'site: beta\nregistry: https://hub.example/registry.git\nstore: ./store\n';

async function load(text: string): Promise<{ cfg?: Awaited<ReturnType<typeof loadAgentConfig>>; error?: string; dir: string }> {
  const dir = tempDir('modelsync-servingcfg-');
  writeFileSync(join(dir, 'agent.yaml'), head + text);
  try {
    return { cfg: await loadAgentConfig({ file: join(dir, 'agent.yaml'), cwd: '/' }), dir };
  } catch (err) {
    return { error: (err as Error).message, dir };
  }
}

describe('agent.yaml serving views and inference checks', () => {
  it('resolves dir, config and the request file against agent.yaml, keeps runtime_dir as written, fills the check\'s url from the view', async () => {
    const { cfg, dir, error } = await load([
      'serving:',
      '  - {kind: ovms, dir: models, models: [mobilenet_ssd], config: models/config.json, runtime_dir: /models, url: "http://127.0.0.1:9001"}',
      '  - {kind: triton, dir: /srv/triton, models: [yolo]}',
      'services:',
      '  - name: ovms',
      '    models: [mobilenet_ssd]',
      '    health: {infer: {model: mobilenet_ssd, request: smoke.json, expect: {outputs: {detection_out: [1, 1, -1, 7]}, finite: true}}}',
      '',
    ].join('\n'));
    expect(error).toBeUndefined();
    expect(cfg!.serving[0]).toEqual({ kind: 'ovms', dir: join(dir, 'models'), models: ['mobilenet_ssd'], config: join(dir, 'models/config.json'), runtime_dir: '/models', url: 'http://127.0.0.1:9001', timeout_s: 60, ready: 'version', keep: 1 });
    expect(cfg!.serving[1]).toMatchObject({ kind: 'triton', dir: '/srv/triton', timeout_s: 60 });
    expect(cfg!.services[0]!.health!.infer).toEqual({
      model: 'mobilenet_ssd', request: join(dir, 'smoke.json'), url: 'http://127.0.0.1:9001',
      expect: { outputs: { detection_out: [1, 1, -1, 7] }, finite: true, tolerance: 1e-4 },
    });
  });

  it('guards the view, its config.json and the smoke request from templates', async () => {
    const { cfg, dir } = await load([
      'serving:',
      '  - {kind: ovms, dir: models, models: [m], config: ovms.json, url: "http://127.0.0.1:9001"}',
      'services:',
      '  - {name: s, models: [m], health: {infer: {model: m, request: smoke.json, expect: {outputs: {Y: [1]}}}}}',
      '',
    ].join('\n'));
    const guarded = guardedPaths(cfg!).map((g) => [g.path, g.subtree]);
    expect(guarded).toEqual(expect.arrayContaining([[join(dir, 'models'), true], [join(dir, 'ovms.json'), true], [join(dir, 'smoke.json'), false]]));
  });

  it('names the field of each mistake', async () => {
    const { error } = await load([
      'serving:',
      '  - {kind: torchserve, dir: /a, models: [m]}',
      '  - {kind: triton, dir: /b, models: [m], config: /b/config.json}',
      '  - {kind: ovms, dir: /c, model: [m]}',
      '',
    ].join('\n'));
    expect(error).toMatch(/agent\.yaml:5:\d+: serving\[0\]\.kind: .*"ovms".*"triton"/);
    expect(error).toMatch(/agent\.yaml:6:\d+: serving\[1\]\.config: config is for kind ovms/);
    expect(error).toMatch(/agent\.yaml:7:\d+: serving\[2\]\.model: unknown key "model" \(did you mean "models"\?\)/);
  });

  it('refuses a model in two views, a view inside the store, and a check with no url to go to', async () => {
    const { error } = await load([
      'serving:',
      '  - {kind: ovms, dir: /models, models: [m]}',
      '  - {kind: triton, dir: /triton, models: [m]}',
      '  - {kind: triton, dir: store/view, models: [n]}',
      'services:',
      '  - name: s',
      '    models: [m]',
      '    health: {infer: {model: m, request: smoke.json, expect: {outputs: {Y: [1]}, values: {Z: [1]}}}}',
      '',
    ].join('\n'));
    expect(error).toMatch(/serving\[1\]\.models\[0\]: model m is already served by serving\[0\]/);
    expect(error).toMatch(/serving\[2\]\.dir: \S*\/store\/view overlaps the store/);
    expect(error).toMatch(/services\[0\]\.health\.infer: url is required: no serving view with a url lists model m/);
    expect(error).toMatch(/services\[0\]\.health\.infer\.expect\.values\.Z: output Z is not in expect\.outputs/);
  });

  it('takes one of command, http or infer', async () => {
    const { error } = await load('services:\n  - name: s\n    models: [m]\n    health: {http: "http://127.0.0.1:1/ready", infer: {model: m, request: r.json, url: "http://127.0.0.1:1", expect: {outputs: {Y: [1]}}}}\n');
    expect(error).toMatch(/services\[0\]\.health: give exactly one of command, http, infer or metric/);
  });
});
