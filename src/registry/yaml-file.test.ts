/**
 * Registry YAML is untrusted: whatever the text, parsing returns positioned
 * problems (never throws, never hangs) and never hands on a value that YAML
 * or JavaScript would have silently bent.
 */
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../errors.ts';
import { parseYamlFile } from './yaml-file.ts';

const problems = (text: string): string[] => parseYamlFile('f.yaml', text).syntaxProblems.map(formatProblem);

describe('parseYamlFile on hostile or odd YAML', () => {
  it('stops an alias bomb with a problem instead of an exception or a blow-up', () => {
    const levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (const [i, name] of ['b', 'c', 'd', 'e', 'f', 'g'].entries()) {
      const prev = String.fromCharCode('a'.charCodeAt(0) + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const yf = parseYamlFile('f.yaml', `${levels.join('\n')}\n`);
    expect(yf.value).toBeUndefined();
    expect(yf.syntaxProblems.map(formatProblem)).toEqual(['f.yaml:1:1: YAML: aliases expand too much (more than 100)']);
    // A few aliases for shared defaults are fine.
    expect(parseYamlFile('f.yaml', 'base: &b {keep: 5}\nsite: *b\n').value).toEqual({ base: { keep: 5 }, site: { keep: 5 } });
  });

  it('refuses tags outside the core schema instead of turning them into strings', () => {
    expect(problems('models:\n  m: !!js/function "function () {}"\n')).toEqual([
      'f.yaml:2:6: YAML: tag !!js/function is not allowed (plain YAML values only)',
    ]);
    expect(problems('a: !custom {b: 1}\n')).toEqual(['f.yaml:1:4: YAML: tag !custom is not allowed (plain YAML values only)']);
    expect(problems('version: !!binary aGVsbG8=\n')).toEqual(['f.yaml:1:19: YAML: tag !!binary is not allowed (plain YAML values only)']);
    expect(problems('version: !!str 3\n')).toEqual([]);
    expect(parseYamlFile('f.yaml', 'version: !!str 3\n').value).toEqual({ version: '3' });
  });

  it('refuses keys JavaScript would bend: collections and __proto__', () => {
    expect(problems('models:\n  [1, 2]: {current_version: "1"}\n')).toEqual(['f.yaml:2:3: YAML: a key must be a plain value, not a list or mapping']);
    expect(problems('models:\n  ? {a: 1}\n  : x\n')).toEqual(['f.yaml:2:5: YAML: a key must be a plain value, not a list or mapping']);
    expect(problems('models:\n  __proto__: {current_version: "1"}\n')).toEqual(['f.yaml:2:3: YAML: "__proto__" is not allowed as a key']);
    expect(problems('labels: {"__proto__": x}\n')).toEqual(['f.yaml:1:10: YAML: "__proto__" is not allowed as a key']);
  });

  it('reports duplicate keys at the second one', () => {
    expect(problems('models:\n  m: {current_version: "1"}\n  m: {current_version: "2"}\n')).toEqual(['f.yaml:3:3: YAML: Map keys must be unique']);
  });

  it('reports nesting too deep for the parser once, without overflowing the stack', () => {
    const deep = `a: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`;
    const found = problems(deep);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(/^f\.yaml:1:\d+: YAML: /);
  });

  it('measures the size limit in bytes, not characters', () => {
    const text = `a: "${'é'.repeat(600_000)}"\n`; // 1.2 MB in UTF-8, 0.6 M characters
    expect(problems(text)).toEqual(['f.yaml:1:1: file is larger than 1048576 bytes']);
  });

  it('refuses several documents in one file', () => {
    expect(problems('models: {}\n---\nmodels: {}\n')[0]).toMatch(/^f\.yaml:2:1: YAML: Source contains multiple documents/);
  });

  it('positions values the same with a byte-order mark and with CRLF line ends', () => {
    for (const text of ['\uFEFFmodels:\n  m:\n    current_version: "1"\n    bogus: 1\n', 'models:\r\n  m:\r\n    current_version: "1"\r\n    bogus: 1\r\n']) {
      const yf = parseYamlFile('f.yaml', text);
      expect(yf.syntaxProblems).toEqual([]);
      expect(yf.value).toEqual({ models: { m: { current_version: '1', bogus: 1 } } });
      expect(yf.locate(['models', 'm', 'bogus'], true)).toEqual({ line: 4, col: 5 });
      expect(yf.locate(['models', 'm', 'current_version'])).toEqual({ line: 3, col: 22 });
    }
  });

  it('positions inside flow collections, and a missing key at its parent', () => {
    const yf = parseYamlFile('f.yaml', 'files: [{name: a, size: 1}, {name: b, size: x}]\n');
    expect(yf.locate(['files', 1, 'size'])).toEqual({ line: 1, col: 45 });
    expect(yf.locate(['files', 1, 'name'], true)).toEqual({ line: 1, col: 30 });
    expect(yf.locate(['files', 1, 'sha256'])).toEqual({ line: 1, col: 29 });
    expect(yf.problem(['files', 1, 'size'], 'bad').path).toBe('files[1].size');
  });

  it('positions and names keys that are not plain words: spaces, the null key', () => {
    const yf = parseYamlFile('f.yaml', 'models:\n  ok: {a: 1}\n  "bad name": {a: 1}\n  ~: {a: 1}\n');
    expect(yf.value).toEqual({ models: { ok: { a: 1 }, 'bad name': { a: 1 }, '': { a: 1 } } });
    expect(yf.problem(['models', 'bad name'], 'x', { key: true })).toMatchObject({ line: 3, col: 3, path: 'models["bad name"]' });
    expect(yf.problem(['models', ''], 'x', { key: true })).toMatchObject({ line: 4, col: 3, path: 'models[""]' });
    expect(yf.problem(['models', 'ok', 'a'], 'x').path).toBe('models.ok.a');
  });
});
