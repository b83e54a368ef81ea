/**
 * How the test inference server decides which versions of a model to load,
 * with the rules of the real servers (read independently of src/serving, so
 * a mistake there is not mirrored here):
 * - OVMS: config.json's model_config_list, each `config` with `name`,
 *   `base_path` and `model_version_policy` (`specific: {versions}`,
 *   `latest: {num_versions}`, `all: {}`; default latest 1); versions are the
 *   numeric directories under base_path; the model file is the `.onnx` in it.
 * - Triton: `<repo>/<model>/config.pbtxt`'s `version_policy` (same three
 *   kinds; default latest 1); the model file is `model.onnx`, or
 *   `default_model_filename`.
 */
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

export type Policy = { specific: number[] } | { latest: number } | { all: true };

export interface ModelDecl {
  name: string;
  /** The model's directory (numeric version directories under it). */
  dir: string;
  policy: Policy;
  /** The model file's name inside a version directory (undefined: the first .onnx). */
  filename?: string;
}

export function numericVersions(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => /^[1-9][0-9]*$/.test(n) && statSync(join(dir, n)).isDirectory()).map(Number).sort((a, b) => a - b);
}

/** The versions a policy selects among those on disk; a `specific` version that is not there is selected anyway (and fails to load, as on the real servers). */
export function selectVersions(policy: Policy, onDisk: number[]): number[] {
  if ('specific' in policy) return [...policy.specific];
  if ('all' in policy) return onDisk;
  return onDisk.slice(-policy.latest);
}

function policyFromJson(p: unknown): Policy {
  if (!p || typeof p !== 'object') return { latest: 1 };
  const o = p as Record<string, { versions?: unknown; num_versions?: unknown }>;
  if (o.specific) {
    const v = o.specific.versions;
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new Error('model_version_policy.specific.versions must be a list of integers');
    return { specific: v as number[] };
  }
  if (o.all) return { all: true };
  if (o.latest) return { latest: Number(o.latest.num_versions ?? 1) };
  throw new Error(`unknown model_version_policy ${JSON.stringify(p)}`);
}

/** OVMS: every model of config.json. Throws on a file OVMS would refuse. */
export function readOvmsConfig(file: string): ModelDecl[] {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { model_config_list?: Array<{ config?: Record<string, unknown> }> };
  if (!Array.isArray(doc.model_config_list)) throw new Error('config.json has no model_config_list');
  return doc.model_config_list.map((e, i) => {
    const c = e.config;
    if (!c || typeof c.name !== 'string' || typeof c.base_path !== 'string') throw new Error(`model_config_list[${i}]: config needs name and base_path`);
    return { name: c.name, dir: c.base_path, policy: policyFromJson(c.model_version_policy) };
  });
}

/** Triton: one model of the repository. Throws when its config.pbtxt is missing or unreadable. */
export function readTritonModel(repo: string, name: string): ModelDecl {
  const dir = join(repo, name);
  const file = join(dir, 'config.pbtxt');
  if (!existsSync(file)) throw new Error(`failed to load '${name}': no config.pbtxt in ${dir}`);
  // Comments out, strings kept: enough of protobuf text for the fields read here.
  const text = readFileSync(file, 'utf8').replace(/#[^\n]*/g, '');
  const nameField = /(^|\s)name\s*:\s*"([^"]*)"/.exec(text);
  if (nameField && nameField[2] !== name) throw new Error(`failed to load '${name}': config.pbtxt names model "${nameField[2]}"`);
  const filename = /default_model_filename\s*:\s*"([^"]*)"/.exec(text)?.[1] ?? 'model.onnx';
  const vp = /version_policy\s*:?\s*\{\s*(specific|latest|all)\s*:?\s*\{([^}]*)\}\s*\}/.exec(text);
  let policy: Policy = { latest: 1 };
  if (/version_policy/.test(text) && !vp) throw new Error(`failed to load '${name}': cannot read version_policy in config.pbtxt`);
  if (vp) {
    const body = vp[2]!;
    if (vp[1] === 'specific') {
      const list = /versions\s*:\s*\[([^\]]*)\]/.exec(body)?.[1] ?? [...body.matchAll(/versions\s*:\s*(\d+)/g)].map((m) => m[1]).join(',');
      const versions = list.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
      if (versions.length === 0 || versions.some((v) => !Number.isInteger(v))) throw new Error(`failed to load '${name}': bad specific versions`);
      if ((text.match(/version_policy/g) ?? []).length > 1) throw new Error(`failed to load '${name}': version_policy given twice`);
      policy = { specific: versions };
    } else if (vp[1] === 'all') policy = { all: true };
    else policy = { latest: Number(/num_versions\s*:\s*(\d+)/.exec(body)?.[1] ?? 1) };
  }
  return { name, dir, policy, filename };
}
