/**
 * Triton's config.pbtxt (protobuf text format), kept by the agent. Pure. The
 * agent owns one field, the top-level `version_policy`; everything else is
 * the operator's (or the registry's, when a version ships a config.pbtxt)
 * and is kept byte for byte. A full protobuf-text parser is not needed for
 * that: a tokenizer that knows strings, comments and nesting finds the field.
 */
import { ServiceError } from '../errors.ts';

export const TRITON_CONFIG = 'config.pbtxt';

/** `text` with its top-level version_policy replaced by `specific: { versions: [n] }`. */
export function setTritonVersionPolicy(text: string, n: number, file: string): string {
  const spans = topLevelFieldSpans(text, 'version_policy', file);
  let out = text;
  for (const [start, end] of spans.reverse()) out = out.slice(0, start) + out.slice(end);
  out = out.replace(/\s*$/, '');
  return `${out}${out ? '\n' : ''}version_policy: { specific: { versions: [${n}] } }\n`;
}

/** A config for a model the operator gave none for: its name and, for an ONNX file, the backend. */
export function defaultTritonConfig(model: string, files: readonly string[]): string {
  const backend = files.some((f) => f.endsWith('.onnx')) ? 'backend: "onnxruntime"\n' : '';
  return `name: ${JSON.stringify(model)}\n${backend}`;
}

/**
 * The [start, end) ranges of every top-level `name { ... }` / `name: { ... }` /
 * `name: < ... >` field, including a trailing `,` or `;`. Throws on
 * unbalanced nesting or an unterminated string (the file is not written).
 */
export function topLevelFieldSpans(text: string, name: string, file: string): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let depth = 0;
  let i = 0;
  const closers: string[] = [];
  let fieldStart = -1;
  let fieldDepth = -1;
  const bad = (why: string): never => {
    throw new ServiceError(`${file}: ${why} (at offset ${i}); it is left as it is`, { file });
  };
  while (i < text.length) {
    const c = text[i]!;
    if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const q = c;
      i++;
      while (i < text.length && text[i] !== q) {
        if (text[i] === '\\') i++;
        if (text[i] === '\n') bad('unterminated string');
        i++;
      }
      if (i >= text.length) bad('unterminated string');
      i++;
      continue;
    }
    if (c === '{' || c === '<' || c === '[') {
      closers.push(c === '{' ? '}' : c === '<' ? '>' : ']');
      depth++;
      i++;
      continue;
    }
    if (c === '}' || c === '>' || c === ']') {
      if (closers.pop() !== c) bad(`unbalanced "${c}"`);
      depth--;
      i++;
      if (fieldStart >= 0 && depth === fieldDepth) {
        let end = i;
        const m = /^[ \t]*[,;]?/.exec(text.slice(end));
        end += m ? m[0].length : 0;
        // A field on lines of its own takes its line break along, so no blank line is left.
        if (text[end] === '\n' && (fieldStart === 0 || text[fieldStart - 1] === '\n')) end++;
        spans.push([fieldStart, end]);
        fieldStart = -1;
      }
      continue;
    }
    if (depth === 0 && /[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i))!;
      const word = m[0];
      const after = /^\s*:?\s*([{<])?/.exec(text.slice(i + word.length))!;
      if (word === name && after[1]) {
        // Only the opening brace is consumed by the loop: the span ends at its match.
        fieldStart = i;
        fieldDepth = 0;
        i += word.length + after[0].length - 1;
        continue;
      }
      if (word === name) bad(`${name} must be a message ({ ... })`);
      i += word.length;
      continue;
    }
    i++;
  }
  if (closers.length) bad(`unclosed "${closers[closers.length - 1] === '}' ? '{' : closers[closers.length - 1] === '>' ? '<' : '['}"`);
  return spans;
}
