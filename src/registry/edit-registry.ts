/**
 * Edits of model_registry.yaml that keep everything a person wrote: comments,
 * key order, quoting and blank lines. Only the scalars that change are
 * touched (through the `yaml` Document API), so a promotion is a one- or
 * two-line diff a reviewer can read.
 */
import { isMap, isPair, isScalar, parseDocument, Pair, Scalar, YAMLMap, type Document } from 'yaml';
import { NotFoundError, UsageError, ValidationError } from '../errors.ts';
import { MODEL_REGISTRY_FILE } from './layout.ts';
import { parseYamlFile } from './yaml-file.ts';

/** What a new, empty model_registry.yaml looks like (init). */
export const EMPTY_MODEL_REGISTRY = `# yaml-language-server: $schema=../schemas/model_registry.schema.json
# What every site runs unless its site file says otherwise.
# \`modelsync promote\` and \`modelsync rollback\` edit this file; a pull request
# that changes a current_version is a deployment.
models: {}
`;

function load(text: string): Document {
  const yf = parseYamlFile(MODEL_REGISTRY_FILE, text);
  if (yf.syntaxProblems.length) throw new ValidationError(yf.syntaxProblems, `cannot edit ${MODEL_REGISTRY_FILE}`);
  return parseDocument(text, { version: '1.2', keepSourceTokens: false });
}

function models(doc: Document, create: boolean): YAMLMap {
  let m = doc.get('models', true);
  if (!isMap(m)) {
    if (!create) throw new UsageError(`${MODEL_REGISTRY_FILE} has no "models" mapping`);
    m = new YAMLMap();
    doc.set('models', m);
  }
  return m as YAMLMap;
}

function findPair(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((p) => isPair(p) && (isScalar(p.key) ? String(p.key.value) : String(p.key)) === key) as Pair | undefined;
}

function quoted(value: string): Scalar {
  const s = new Scalar(value);
  s.type = Scalar.QUOTE_DOUBLE;
  return s;
}

/** Set `key` to `value`, keeping the existing scalar's quoting; new keys go after `after` when given. */
function setVersionKey(entry: YAMLMap, key: string, value: string, after?: string): void {
  const pair = findPair(entry, key);
  if (pair && isScalar(pair.value)) {
    pair.value.value = value;
    // An unquoted integer-looking version would read back as a number; quote it.
    if (pair.value.type === Scalar.PLAIN && !/[^0-9.]/.test(value)) pair.value.type = Scalar.QUOTE_DOUBLE;
    return;
  }
  if (pair) {
    pair.value = quoted(value);
    return;
  }
  const idx = after ? entry.items.findIndex((p) => isPair(p) && isScalar(p.key) && p.key.value === after) : -1;
  const newPair = new Pair(new Scalar(key), quoted(value));
  if (idx >= 0) entry.items.splice(idx + 1, 0, newPair);
  else entry.items.push(newPair);
}

function deleteKey(entry: YAMLMap, key: string): void {
  const idx = entry.items.findIndex((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
  if (idx >= 0) entry.items.splice(idx, 1);
}

function render(doc: Document): string {
  return doc.toString({ lineWidth: 0 });
}

export interface PromoteEdit {
  text: string;
  /** The version that was current before (now previous_version), if the model existed. */
  from?: string;
  created: boolean;
}

/**
 * Make `version` current for `model`: previous_version becomes the old
 * current. A model without an entry gets one when `create` is set.
 */
export function promoteInText(text: string, model: string, version: string, opts: { create?: boolean; description?: string } = {}): PromoteEdit {
  const doc = load(text);
  const map = models(doc, Boolean(opts.create));
  const pair = findPair(map, model);
  if (!pair) {
    if (!opts.create) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });
    // A `models: {}` written by init is a flow map; entries read better in block style.
    if (map.items.length === 0) map.flow = false;
    const entry = new YAMLMap();
    entry.items.push(new Pair(new Scalar('current_version'), quoted(version)));
    if (opts.description) entry.items.push(new Pair(new Scalar('description'), quoted(opts.description)));
    map.items.push(new Pair(new Scalar(model), entry));
    return { text: render(doc), created: true };
  }
  if (!isMap(pair.value)) throw new UsageError(`${MODEL_REGISTRY_FILE}: models.${model} is not a mapping`);
  const entry = pair.value as YAMLMap;
  const cur = entry.get('current_version');
  const from = cur === undefined || cur === null ? undefined : String(cur);
  if (from === version) throw new UsageError(`${model} ${version} is already the current version`, { model, version });
  setVersionKey(entry, 'current_version', version);
  if (from !== undefined) setVersionKey(entry, 'previous_version', from, 'current_version');
  return { text: render(doc), from, created: false };
}

/** Set a model's current and previous versions to given values (rollback restores an earlier entry). */
export function setVersionsInText(text: string, model: string, versions: { current: string; previous?: string }): string {
  const doc = load(text);
  const pair = findPair(models(doc, false), model);
  if (!pair || !isMap(pair.value)) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });
  const entry = pair.value as YAMLMap;
  setVersionKey(entry, 'current_version', versions.current);
  if (versions.previous === undefined) deleteKey(entry, 'previous_version');
  else setVersionKey(entry, 'previous_version', versions.previous, 'current_version');
  return render(doc);
}
