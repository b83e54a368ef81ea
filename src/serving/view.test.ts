import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { canMount, mountTmpfs } from '../../test/helpers/tmpfs.ts';
import { ServingRepo } from './view.ts';

const at = '2026-01-01T00:00:00Z';

function storeVersion(root: string, files: Record<string, string>): string {
  const dir = join(root, 'store/models/m/1');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('ServingRepo', () => {
  it('builds <dir>/<model>/<N>/ as hard links into the store, aside and renamed', async () => {
    const root = tempDir('modelsync-view-');
    const src = storeVersion(root, { 'model.onnx': 'onnx', 'labels/coco.txt': 'person' });
    const repo = new ServingRepo({ kind: 'ovms', dir: join(root, 'models') });
    // Left by a crash mid-build: never seen by a server, removed.
    mkdirSync(join(root, 'models/m/.7.tmp'), { recursive: true });
    const r = await repo.stage('m', '1', src, at);
    expect(r).toEqual({ n: 1, linked: 2, copied: 0 });
    expect(statSync(join(root, 'models/m/1/model.onnx')).ino).toBe(statSync(join(src, 'model.onnx')).ino);
    expect(readFileSync(join(root, 'models/m/1/labels/coco.txt'), 'utf8')).toBe('person');
    expect(readdirSync(join(root, 'models/m'))).toEqual(['1']);
    await repo.point([{ model: 'm', n: 1 }]);
    expect(JSON.parse(readFileSync(join(root, 'models/config.json'), 'utf8')).model_config_list[0].config).toEqual({ name: 'm', base_path: join(root, 'models/m'), model_version_policy: { specific: { versions: [1] } } });
    expect((await repo.view('m')).served).toBe(1);
  });

  it('writes base_path as the server sees the directory (runtime_dir)', async () => {
    const root = tempDir('modelsync-view-');
    const src = storeVersion(root, { 'model.onnx': 'onnx' });
    const repo = new ServingRepo({ kind: 'ovms', dir: join(root, 'models'), configFile: join(root, 'ovms.json'), runtimeDir: '/models/' });
    const { n } = await repo.stage('m', '1', src, at);
    await repo.point([{ model: 'm', n }]);
    expect(JSON.parse(readFileSync(join(root, 'ovms.json'), 'utf8')).model_config_list[0].config.base_path).toBe('/models/m');
  });

  it('never reuses an N: not after a failed build, not when the state file is lost', async () => {
    const root = tempDir('modelsync-view-');
    const src = storeVersion(root, { 'model.onnx': 'onnx' });
    const repo = new ServingRepo({ kind: 'triton', dir: join(root, 'triton') });
    expect((await repo.stage('m', '1', src, at)).n).toBe(1);
    await expect(repo.stage('m', '2', join(root, 'no-such-version'), at)).rejects.toThrow(/cannot build m\/2 from .*no-such-version/);
    expect(existsSync(join(root, 'triton/m/2'))).toBe(false);
    expect((await repo.view('m')).entries.find((e) => e.n === 2)?.failed).toBe(true);
    expect((await repo.stage('m', '2', src, at)).n).toBe(3);
    writeFileSync(repo.stateFile, JSON.stringify({ format: 1, models: {} }));
    expect((await repo.stage('m', '2', src, at)).n).toBe(4);
  });

  it.skipIf(!canMount())('copies and verifies across filesystems (no hard links there)', async () => {
    const root = tempDir('modelsync-view-');
    const src = storeVersion(root, { 'model.onnx': 'x'.repeat(100_000) });
    const other = mountTmpfs('size=4m');
    const repo = new ServingRepo({ kind: 'triton', dir: join(other, 'triton') });
    const r = await repo.stage('m', '1', src, at);
    expect(r).toEqual({ n: 1, linked: 0, copied: 1 });
    expect(readFileSync(join(other, 'triton/m/1/model.onnx'), 'utf8')).toBe('x'.repeat(100_000));
    expect(statSync(join(other, 'triton/m/1/model.onnx')).mode & 0o777).toBe(0o444);
  });
});
