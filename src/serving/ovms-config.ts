/**
 * OpenVINO Model Server's config.json, kept by the agent. Pure: text in, text
 * out. Only the entries of the models the view manages change (their
 * `base_path` and `model_version_policy`); every other model, key and
 * setting the operator wrote (batch_size, target_device, plugin_config,
 * mediapipe_config_list, ...) stays as it was.
 */
import { ServiceError } from '../errors.ts';

export interface OvmsModelPointer {
  name: string;
  /** The model's directory as OVMS sees it (`<runtime_dir>/<model>`). */
  basePath: string;
  /** The numeric version directory to serve. */
  version: number;
}

type Json = Record<string, unknown>;

/** The new config.json text; `text` null means there is none yet. Throws ServiceError naming `file` on a file it cannot keep. */
export function updateOvmsConfig(text: string | null, file: string, models: readonly OvmsModelPointer[]): string {
  let doc: Json = { model_config_list: [] };
  if (text !== null && text.trim() !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ServiceError(`${file}: not valid JSON (${(err as Error).message}); it is left as it is`, { file });
    }
    if (!isObject(parsed)) throw new ServiceError(`${file}: must be a JSON object with model_config_list; it is left as it is`, { file });
    doc = parsed;
  }
  const list = doc.model_config_list ?? [];
  if (!Array.isArray(list)) throw new ServiceError(`${file}: model_config_list must be a list; it is left as it is`, { file });
  const out: unknown[] = [...list];
  for (const m of models) {
    const i = out.findIndex((e) => isObject(e) && isObject(e.config) && e.config.name === m.name);
    const entry = i >= 0 ? (out[i] as Json) : {};
    const config = i >= 0 ? (entry.config as Json) : { name: m.name };
    const next = {
      ...entry,
      config: { ...config, name: m.name, base_path: m.basePath, model_version_policy: { specific: { versions: [m.version] } } },
    };
    if (i >= 0) out[i] = next;
    else out.push(next);
  }
  return `${JSON.stringify({ ...doc, model_config_list: out }, null, 2)}\n`;
}

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
