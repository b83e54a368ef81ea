import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Document, type Node } from 'yaml';
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
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[');
}

// YAML files in the registry are small; anything bigger is a mistake or an attack.
const MAX_YAML_BYTES = 1 << 20;

export function parseYamlFile(file: string, text: string): YamlFile {
  const lc = new LineCounter();
  const syntaxProblems: Problem[] = [];
  let doc: Document | undefined;
  if (text.length > MAX_YAML_BYTES) {
    syntaxProblems.push({ file, line: 1, col: 1, path: '', message: `file is larger than ${MAX_YAML_BYTES} bytes` });
  } else {
    doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, version: '1.2' });
    for (const e of doc.errors) {
      const pos = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
      syntaxProblems.push({ file, line: pos.line, col: pos.col, path: '', message: `YAML: ${firstLine(e.message)}` });
    }
  }
  const value = doc && syntaxProblems.length === 0 ? doc.toJS({ maxAliasCount: 100 }) : undefined;

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

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | undefined)?.range;
  return range ? range[0] : undefined;
}

function keyString(key: unknown): string {
  if (isScalar(key)) return String(key.value);
  return String(key);
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}
