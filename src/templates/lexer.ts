/**
 * Splits a Jinja-compatible template into text and tag tokens, and the inside
 * of tags into expression tokens. Whitespace control (`{%-`, `-%}`, `{{-`,
 * `-}}`, `{#-`, `-#}`) and Ansible's `trim_blocks` (the first newline after a
 * block or comment tag is dropped; `+%}` keeps it) are applied here, so the
 * parser only sees the text that will be output.
 */
import { TemplateError } from './errors.ts';

export type TokenType =
  | 'text'
  | 'var_start' | 'var_end'
  | 'block_start' | 'block_end'
  | 'name' | 'string' | 'number' | 'op'
  | 'eof';

export interface Token {
  type: TokenType;
  /** Text for `text`, `name`, `op`; the decoded value for `string`; the source digits for `number`. */
  value: string;
  /** Offset in the template text. */
  pos: number;
}

/** Longest operators first so `//` wins over `/`. */
const OPERATORS = ['//', '**', '==', '!=', '<=', '>=', '<', '>', '+', '-', '*', '/', '%', '~', '(', ')', '[', ']', '{', '}', ',', '.', ':', '|', '='];

const RAW_START = /\{%([-+]?)\s*raw\s*([-+]?)%\}/y;
const RAW_END = /\{%([-+]?)\s*endraw\s*([-+]?)%\}/g;

export interface Lexed {
  tokens: Token[];
  /** Offset -> {line, col}, 1-based. */
  position(pos: number): { line: number; col: number };
}

export function lineIndex(text: string): (pos: number) => { line: number; col: number } {
  const starts = [0];
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
  return (pos) => {
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: pos - starts[lo]! + 1 };
  };
}

export function tokenize(text: string, name: string): Lexed {
  const position = lineIndex(text);
  const fail = (pos: number, message: string): never => {
    const { line, col } = position(pos);
    throw new TemplateError(name, line, col, message);
  };
  const tokens: Token[] = [];
  // Set by a closing `-%}`: strip the whitespace that starts the next text.
  let stripNext = false;
  // Set by a closing `%}` or `#}` without `+`: drop one newline that starts the next text.
  let trimNewline = false;
  let i = 0;

  const pushText = (start: number, end: number, stripRight: boolean): void => {
    let s = start;
    let e = end;
    if (stripNext) while (s < e && isSpace(text.charCodeAt(s))) s++;
    else if (trimNewline) {
      if (text.startsWith('\r\n', s)) s += 2;
      else if (text.charCodeAt(s) === 10) s += 1;
    }
    if (stripRight) while (e > s && isSpace(text.charCodeAt(e - 1))) e--;
    stripNext = false;
    trimNewline = false;
    if (e > s) tokens.push({ type: 'text', value: text.slice(s, e), pos: s });
  };

  while (i < text.length) {
    const open = findOpen(text, i);
    if (open < 0) {
      pushText(i, text.length, false);
      i = text.length;
      break;
    }
    const kind = text[open + 1]!;
    const modifier = text[open + 2];
    const stripLeft = modifier === '-';
    pushText(i, open, stripLeft);
    let p = open + 2 + (modifier === '-' || modifier === '+' ? 1 : 0);

    if (kind === '#') {
      const close = text.indexOf('#}', p);
      if (close < 0) fail(open, 'unclosed comment: "{#" without "#}"');
      const endMod = text[close - 1];
      stripNext = endMod === '-' && close - 1 >= p;
      trimNewline = !stripNext && !(endMod === '+' && close - 1 >= p);
      i = close + 2;
      continue;
    }

    if (kind === '%') {
      RAW_START.lastIndex = open;
      const raw = RAW_START.exec(text);
      if (raw) {
        RAW_END.lastIndex = RAW_START.lastIndex;
        const end = RAW_END.exec(text);
        if (!end) fail(open, 'unclosed "raw" block: expected {% endraw %}');
        stripNext = raw[2] === '-';
        trimNewline = !stripNext && raw[2] !== '+';
        pushText(RAW_START.lastIndex, end!.index, end![1] === '-');
        stripNext = end![2] === '-';
        trimNewline = !stripNext && end![2] !== '+';
        i = end!.index + end![0].length;
        continue;
      }
    }

    const isVar = kind === '{';
    const closer = isVar ? '}}' : '%}';
    tokens.push({ type: isVar ? 'var_start' : 'block_start', value: isVar ? '{{' : '{%', pos: open });
    let depth = 0;
    let closed = false;
    while (p < text.length) {
      const c = text.charCodeAt(p);
      if (isSpace(c)) {
        p++;
        continue;
      }
      if (depth === 0) {
        const stripEnd = text.startsWith(`-${closer}`, p);
        const keepEnd = !isVar && text.startsWith(`+${closer}`, p);
        if (stripEnd || keepEnd || text.startsWith(closer, p)) {
          tokens.push({ type: isVar ? 'var_end' : 'block_end', value: closer, pos: p });
          p += closer.length + (stripEnd || keepEnd ? 1 : 0);
          stripNext = stripEnd;
          trimNewline = !isVar && !stripEnd && !keepEnd;
          closed = true;
          break;
        }
      }
      if (isNameStart(c)) {
        const s = p;
        while (p < text.length && isNameChar(text.charCodeAt(p))) p++;
        tokens.push({ type: 'name', value: text.slice(s, p), pos: s });
        continue;
      }
      if (isDigit(c)) {
        NUMBER.lastIndex = p;
        const m = NUMBER.exec(text)!;
        tokens.push({ type: 'number', value: m[0], pos: p });
        p += m[0].length;
        continue;
      }
      if (c === 39 /* ' */ || c === 34 /* " */) {
        const { value, end } = readString(text, p, fail);
        tokens.push({ type: 'string', value, pos: p });
        p = end;
        continue;
      }
      const op = OPERATORS.find((o) => text.startsWith(o, p));
      if (!op) fail(p, `unexpected character ${JSON.stringify(text[p])} in a tag`);
      if (op === '{' || op === '[' || op === '(') depth++;
      else if ((op === '}' || op === ']' || op === ')') && depth > 0) depth--;
      tokens.push({ type: 'op', value: op!, pos: p });
      p += op!.length;
    }
    if (!closed) fail(open, `unclosed tag: "${isVar ? '{{' : '{%'}" without "${closer}"`);
    i = p;
  }
  tokens.push({ type: 'eof', value: '', pos: text.length });
  return { tokens, position };
}

const NUMBER = /\d+(?:_\d+)*(?:\.\d+(?:_\d+)*)?(?:[eE][+-]?\d+)?/y;

/** The next `{{`, `{%` or `{#` at or after `from`, or -1. */
function findOpen(text: string, from: number): number {
  let i = text.indexOf('{', from);
  while (i >= 0 && i + 1 < text.length) {
    const n = text[i + 1];
    if (n === '{' || n === '%' || n === '#') return i;
    i = text.indexOf('{', i + 1);
  }
  return -1;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };

function readString(text: string, start: number, fail: (pos: number, msg: string) => never): { value: string; end: number } {
  const quote = text[start]!;
  let out = '';
  let p = start + 1;
  while (p < text.length) {
    const ch = text[p]!;
    if (ch === quote) return { value: out, end: p + 1 };
    if (ch === '\\') {
      const e = text[p + 1];
      if (e === undefined) break;
      if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(p + 2, p + 6))) {
        out += String.fromCharCode(parseInt(text.slice(p + 2, p + 6), 16));
        p += 6;
        continue;
      }
      // Unknown escapes stay as written, as in Python.
      out += ESCAPES[e] ?? `\\${e}`;
      p += 2;
      continue;
    }
    out += ch;
    p++;
  }
  return fail(start, 'unterminated string literal');
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isNameStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || isDigit(c);
}
