/** Shared pieces of the serving tests: a registry of ONNX models and a smoke request. */
import { writeFileSync, statSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { onnxModel } from '../helpers/inference-server/models.ts';

/** A registry with model `model` at version 1 (Y = X + 1), site alpha, committed. */
export function onnxRegistry(prefix: string, env: NodeJS.ProcessEnv, model: string): TestRegistry {
  const reg = TestRegistry.init(tempDir(prefix), env);
  reg.addVersion(model, '1', { 'model.onnx': onnxModel({ op: 'add', add: 1, shape: [1, 4] }) });
  reg.setCurrent(model, '1');
  reg.site('alpha', {});
  reg.commit('det 1: Y = X + 1');
  return reg;
}

/** Publish a version with these files and make it current, as one commit. */
export function publish(reg: TestRegistry, model: string, version: string, files: Record<string, string | Uint8Array>): string {
  reg.addVersion(model, version, files);
  reg.setCurrent(model, version);
  return reg.commit(`promote ${model} ${version}`);
}

/** The smoke request file a site keeps next to its agent.yaml. */
export function smokeRequest(dir: string): string {
  const path = join(dir, 'smoke.json');
  writeFileSync(path, JSON.stringify({ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }));
  return path;
}

/** The numeric version directories of a model in a view. */
export function versionDirs(viewDir: string, model: string): number[] {
  const d = join(viewDir, model);
  if (!existsSync(d)) return [];
  return readdirSync(d).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
}

export const inode = (p: string): number => statSync(p).ino;
