/**
 * Edits of model_registry.yaml that keep everything a person wrote: comments,
 * their spacing, key order, quoting, flow or block style and blank lines.
 *
 * The file is parsed with the `yaml` Document API to find the nodes; the
 * change is then spliced into the original text at those nodes' source
 * ranges, so a promotion is a one- or two-line diff a reviewer can read.
 * Only when there is no simple splice (a new entry, a flow-style entry) is
 * the document re-serialised, which still keeps comments and order.
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
  return parseDocument(text, { version: '1.2' });
}

function modelsMap(doc: Document, create: boolean): YAMLMap {
  let m = doc.get('models', true);
  if (!isMap(m)) {
    if (!create) throw new UsageError(`${MODEL_REGISTRY_FILE} has no "models" mapping`);
    m = new YAMLMap();
    doc.set('models', m);
  }
  return m as YAMLMap;
}

function keyOf(p: unknown): string | undefined {
  if (!isPair(p)) return undefined;
  return isScalar(p.key) ? String(p.key.value) : String(p.key);
}

function findPair(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((p) => keyOf(p) === key) as Pair | undefined;
}

function quoted(value: string): Scalar {
  const s = new Scalar(value);
  s.type = Scalar.QUOTE_DOUBLE;
  return s;
}

/** Whether YAML would read this plain scalar as a number (then a version must be quoted). */
function looksNumeric(value: string): boolean {
  return /^[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(value) || /^0[xo][0-9a-fA-F]+$/.test(value) || /^[-+]?\.(inf|Inf|INF|nan|NaN|NAN)$/.test(value);
}

/** A version as YAML source, in the style of the scalar it replaces; numeric- or keyword-looking ones are always quoted. */
function scalarSource(value: string, style: Scalar['type']): string {
  if (style === Scalar.QUOTE_SINGLE) return `'${value.replace(/'/g, "''")}'`;
  const keyword = /^(true|false|null|~|yes|no|on|off|y|n)$/i.test(value);
  if (style === Scalar.PLAIN && !looksNumeric(value) && !keyword && /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(value)) return value;
  return JSON.stringify(value);
}

interface Splice {
  start: number;
  end: number;
  text: string;
}

function applySplices(text: string, splices: Splice[]): string {
  let out = text;
  for (const s of [...splices].sort((a, b) => b.start - a.start)) out = out.slice(0, s.start) + s.text + out.slice(s.end);
  return out;
}

function lineStart(text: string, pos: number): number {
  return text.lastIndexOf('\n', pos - 1) + 1;
}

function lineEnd(text: string, pos: number): number {
  const nl = text.indexOf('\n', pos);
  return nl < 0 ? text.length : nl;
}

/**
 * Text splices that set `versions` (and delete previous_version when it is
 * undefined) in a block-style entry; null when the entry needs re-rendering.
 */
function spliceVersions(text: string, entry: YAMLMap, versions: { current: string; previous?: string | null }): Splice[] | null {
  if (entry.flow) return null;
  const splices: Splice[] = [];
  const cur = findPair(entry, 'current_version');
  if (!cur || !isScalar(cur.value) || !cur.value.range || !isScalar(cur.key) || !cur.key.range) return null;
  splices.push({ start: cur.value.range[0], end: cur.value.range[1], text: scalarSource(versions.current, cur.value.type) });
  if (versions.previous === null) return splices;
  const prev = findPair(entry, 'previous_version');
  if (versions.previous === undefined) {
    if (!prev) return splices;
    if (!isScalar(prev.key) || !prev.key.range || !isScalar(prev.value) || !prev.value.range) return null;
    const from = lineStart(text, prev.key.range[0]);
    // The pair must sit on lines of its own to be cut cleanly.
    if (text.slice(from, prev.key.range[0]).trim() !== '') return null;
    const to = lineEnd(text, prev.value.range[1]);
    splices.push({ start: from, end: Math.min(to + 1, text.length), text: '' });
    return splices;
  }
  if (prev) {
    if (!isScalar(prev.value) || !prev.value.range) return null;
    splices.push({ start: prev.value.range[0], end: prev.value.range[1], text: scalarSource(versions.previous, prev.value.type) });
    return splices;
  }
  // Insert previous_version on the line after current_version, at the same indentation.
  const keyStart = cur.key.range[0];
  const indent = text.slice(lineStart(text, keyStart), keyStart);
  if (indent.trim() !== '') return null;
  const at = lineEnd(text, cur.value.range[1]);
  splices.push({ start: at, end: at, text: `\n${indent}previous_version: ${JSON.stringify(versions.previous)}` });
  return splices;
}

/** Set a key through the Document API (the re-rendering path), keeping an existing scalar's quoting. */
function setKey(entry: YAMLMap, key: string, value: string, after?: string): void {
  const pair = findPair(entry, key);
  if (pair && isScalar(pair.value)) {
    pair.value.value = value;
    if (pair.value.type === Scalar.PLAIN && looksNumeric(value)) pair.value.type = Scalar.QUOTE_DOUBLE;
    return;
  }
  if (pair) {
    pair.value = quoted(value);
    return;
  }
  const idx = after ? entry.items.findIndex((p) => keyOf(p) === after) : -1;
  const fresh = new Pair(new Scalar(key), quoted(value));
  if (idx >= 0) entry.items.splice(idx + 1, 0, fresh);
  else entry.items.push(fresh);
}

function rerender(entry: YAMLMap, doc: Document, versions: { current: string; previous?: string | null }): string {
  setKey(entry, 'current_version', versions.current);
  if (versions.previous === undefined) {
    const i = entry.items.findIndex((p) => keyOf(p) === 'previous_version');
    if (i >= 0) entry.items.splice(i, 1);
  } else if (versions.previous !== null) {
    setKey(entry, 'previous_version', versions.previous, 'current_version');
  }
  return doc.toString({ lineWidth: 0 });
}

function editEntry(text: string, doc: Document, entry: YAMLMap, versions: { current: string; previous?: string | null }): string {
  const splices = spliceVersions(text, entry, versions);
  if (splices) {
    const out = applySplices(text, splices);
    // Belt and braces: the splice must mean what the Document edit would.
    const check = parseDocument(out, { version: '1.2' });
    if (check.errors.length === 0) return out;
  }
  return rerender(entry, doc, versions);
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
  const map = modelsMap(doc, Boolean(opts.create));
  const pair = findPair(map, model);
  if (!pair) {
    if (!opts.create) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });
    // A `models: {}` written by init is a flow map; entries read better in block style.
    if (map.items.length === 0) map.flow = false;
    const entry = new YAMLMap();
    entry.items.push(new Pair(new Scalar('current_version'), quoted(version)));
    if (opts.description) entry.items.push(new Pair(new Scalar('description'), quoted(opts.description)));
    map.items.push(new Pair(new Scalar(model), entry));
    return { text: doc.toString({ lineWidth: 0 }), created: true };
  }
  if (!isMap(pair.value)) throw new UsageError(`${MODEL_REGISTRY_FILE}: models.${model} is not a mapping`);
  const entry = pair.value as YAMLMap;
  const cur = entry.get('current_version');
  const from = cur === undefined || cur === null ? undefined : String(cur);
  if (from === version) throw new UsageError(`${model} ${version} is already the current version`, { model, version });
  const out = editEntry(text, doc, entry, { current: version, previous: from ?? null });
  return { text: out, from, created: false };
}

/** Set a model's current and previous versions to given values (rollback restores an earlier entry). */
export function setVersionsInText(text: string, model: string, versions: { current: string; previous?: string }): string {
  const doc = load(text);
  const pair = findPair(modelsMap(doc, false), model);
  if (!pair || !isMap(pair.value)) throw new NotFoundError(`model ${JSON.stringify(model)} is not declared in ${MODEL_REGISTRY_FILE}`, { model });
  return editEntry(text, doc, pair.value as YAMLMap, versions);
}
