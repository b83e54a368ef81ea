import { LineCounter, parseDocument, visit, isMap, isSeq, isPair, isScalar, isCollection, type Document, type Node } from 'yaml';
import type { Problem } from '../errors.ts';

export type YamlPath = ReadonlyArray<string | number>;

/**
 * A parsed YAML file that still knows where every value came from, so a
 * problem found later (by a schema or a cross-file rule) can be reported as
 * `file:line:col`.
 */
export interface YamlFile {
  file: string;
  /** The parsed value; undefined when the text is not valid YAML. */
  value: unknown;
  /** Problems of YAML syntax itself. */
  syntaxProblems: Problem[];
  /** Where `path` is in the file; for a missing key, its nearest parent. `key` points at a mapping key instead of its value. */
  locate(path: YamlPath, key?: boolean): { line: number; col: number };
  /** A positioned problem at `path`. */
  problem(path: YamlPath, message: string, opts?: { key?: boolean }): Problem;
}

export function dottedPath(path: YamlPath): string {
  // Keys that would not read as one dotted segment ("bad name", the empty key of `~:`) are quoted.
  const seg = (p: string | number): string => (typeof p === 'number' ? `[${p}]` : /^[A-Za-z0-9_.-]+$/.test(p) ? p : `[${JSON.stringify(p)}]`);
  return path.map(seg).join('.').replace(/\.\[/g, '[');
}

// YAML files in the registry are small; anything bigger is a mistake or an attack.
const MAX_YAML_BYTES = 1 << 20;
/** Aliases expanded while building the value: enough for shared defaults, not for a "billion laughs". */
const MAX_ALIAS_COUNT = 100;
/** The tags of YAML's core schema; any other (`!!binary`, `!!js/function`, `!custom`) is refused, not guessed at. */
const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'seq', 'map'].map((t) => `tag:yaml.org,2002:${t}`));

export function parseYamlFile(file: string, text: string): YamlFile {
  const lc = new LineCounter();
  const syntaxProblems: Problem[] = [];
  const report = (offset: number | undefined, message: string): void => {
    const { line, col } = offset === undefined ? { line: 1, col: 1 } : lc.linePos(offset);
    syntaxProblems.push({ file, line, col, path: '', message });
  };
  let doc: Document | undefined;
  if (Buffer.byteLength(text, 'utf8') > MAX_YAML_BYTES) {
    syntaxProblems.push({ file, line: 1, col: 1, path: '', message: `file is larger than ${MAX_YAML_BYTES} bytes` });
  } else {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, version: '1.2' });
    // Warnings too: an unresolved tag would otherwise turn silently into a plain string.
    const seen = new Set<string>();
    for (const e of [...doc.errors, ...doc.warnings]) {
      const unresolved = e.code === 'TAG_RESOLVE_FAILED' ? /Unresolved tag: (\S+)/.exec(e.message)?.[1] : undefined;
      const message = unresolved ? tagMessage(unresolved) : `YAML: ${firstLine(e.message)}`;
      // Nesting too deep for the parser fails once per level; one report is enough.
      if (seen.has(message)) continue;
      seen.add(message);
      const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
      syntaxProblems.push({ file, line: pos.line, col: pos.col, path: '', message });
    }
  }
  let value: unknown;
  if (doc && syntaxProblems.length === 0) {
    try {
      checkNodes(doc, report);
      if (syntaxProblems.length === 0) value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      // The yaml library throws (ReferenceError) on alias expansion past the limit, RangeError on runaway depth.
      report(undefined, `YAML: ${err instanceof ReferenceError ? `aliases expand too much (more than ${MAX_ALIAS_COUNT})` : firstLine((err as Error).message)}`);
    }
  }

  const locate = (path: YamlPath, key = false): { line: number; col: number } => {
    if (!doc) return { line: 1, col: 1 };
    let node: unknown = doc.contents;
    let best: number | undefined = rangeStart(node);
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && keyString(it.key) === String(seg));
        if (!pair) break;
        if (last && key) {
          best = rangeStart(pair.key) ?? best;
          break;
        }
        best = rangeStart(pair.value) ?? rangeStart(pair.key) ?? best;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg];
        if (item === undefined) break;
        best = rangeStart(item) ?? best;
        node = item;
      } else {
        break;
      }
    }
    return best === undefined ? { line: 1, col: 1 } : lc.linePos(best);
  };

  return {
    file,
    value,
    syntaxProblems,
    locate,
    problem(path, message, opts) {
      const { line, col } = locate(path, opts?.key);
      return { file, line, col, path: dottedPath(path), message };
    },
  };
}

/**
 * What the YAML grammar allows but a registry file must not hold: tags
 * outside the core schema, keys that are collections (JavaScript would
 * stringify them into "[ 1, 2 ]") and `__proto__` keys (dropped or turned
 * into a prototype by whoever reads the value next).
 */
function checkNodes(doc: Document, report: (offset: number | undefined, message: string) => void): void {
  visit(doc, {
    Node(_key, node) {
      const tag = (node as { tag?: string }).tag;
      if (tag && !CORE_TAGS.has(tag)) report(rangeStart(node), tagMessage(tag));
    },
    Pair(_key, pair) {
      if (isCollection(pair.key)) report(rangeStart(pair.key), 'YAML: a key must be a plain value, not a list or mapping');
      else if (isScalar(pair.key) && pair.key.value === '__proto__') report(rangeStart(pair.key), 'YAML: "__proto__" is not allowed as a key');
    },
  });
}

function tagMessage(tag: string): string {
  return `YAML: tag ${tag.replace(/^tag:yaml\.org,2002:/, '!!')} is not allowed (plain YAML values only)`;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | undefined)?.range;
  return range ? range[0] : undefined;
}

/** A key as the parsed value spells it: yaml turns a null key (`~:` or `: x`) into "". */
function keyString(key: unknown): string {
  if (isScalar(key)) return key.value === null ? '' : String(key.value);
  return key === null || key === undefined ? '' : String(key);
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
