import { describe, expect, it } from 'vitest';
import { TemplateError, compileTemplate, renderTemplate, templateContext } from './index.ts';

const r = (text: string, ctx: unknown = {}, limits = {}): string => renderTemplate(compileTemplate(text, 't.j2'), ctx, limits);

function failure(fn: () => unknown): TemplateError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TemplateError) return err;
    throw err;
  }
  throw new Error('expected a TemplateError');
}

describe('expressions', () => {
  it('prints variables, attributes and indexes', () => {
    expect(r('{{ a }}-{{ b.c }}-{{ d[1] }}-{{ d[-1] }}-{{ b["c"] }}', { a: 'x', b: { c: 2 }, d: [1, 2, 3] })).toBe('x-2-2-3-2');
  });
  it('has literals, arithmetic with Python semantics and concatenation', () => {
    expect(r('{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ "a" ~ 1 ~ none }} {{ "ab" * 2 }} {{ [1] + [2] }}')).toBe('7 3 2 3.5 a1None abab [1, 2]');
  });
  it('prints values the way Jinja (Python) does', () => {
    expect(r('{{ true }} {{ false }} {{ none }} {{ [1, "a", {"k": none}] }}')).toBe("True False None [1, 'a', {'k': None}]");
  });
  it('compares, chains comparisons and short-circuits and/or/not', () => {
    expect(r('{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ "a" in "cat" }} {{ 2 not in [1] }} {{ "k" in {"k": 1} }}')).toBe('True False True True True');
    expect(r('{{ none or "fallback" }} {{ 0 and undefined_name }} {{ not [] }}')).toBe('fallback 0 True');
  });
  it('supports inline if and tests', () => {
    expect(r('{{ "y" if x is defined else "n" }}{{ "y" if nope is defined else "n" }}{{ 4 is divisibleby 2 }}{{ x is not none }}', { x: 1 })).toBe('ynTrueTrue');
  });
  it('slices lists and strings like Python', () => {
    expect(r('{{ xs[1:] }} {{ xs[:-1] }} {{ "hello"[::-1] }} {{ xs[::2] }}', { xs: [1, 2, 3, 4] })).toBe('[2, 3, 4] [1, 2, 3] olleh [1, 3]');
  });
});

describe('filters', () => {
  const ctx = { names: ['b', 'A', 'c'], path: '/opt/models/face/facemodel.pickle', files: [{ name: 'x', size: 2 }, { name: 'y', size: 1 }] };
  it.each([
    ['{{ missing | default("d") }}', 'd'],
    ['{{ "" | default("d", true) }}', 'd'],
    ['{{ names | join(",") }}', 'b,A,c'],
    ['{{ names | sort | join }}', 'Abc'],
    ['{{ names | sort(reverse=true) | first }}', 'c'],
    ['{{ names | last | upper }}', 'C'],
    ['{{ "A b" | lower | replace(" ", "_") }}', 'a_b'],
    ['{{ "aaa" | replace("a", "b", 2) }}', 'bba'],
    ['{{ "  x  " | trim }}', 'x'],
    ['{{ "42" | int + 1 }} {{ "3.9" | int }} {{ "x" | int(7) }}', '43 3 7'],
    ['{{ 3 | string ~ "!" }}', '3!'],
    ['{{ names | length }} {{ "abc" | count }}', '3 3'],
    ['{{ path | basename }} {{ path | dirname }}', 'facemodel.pickle /opt/models/face'],
    ['{{ {"b": 1, "a": [true, none]} | tojson }}', '{"a": [true, null], "b": 1}'],
    ['{{ files | map(attribute="name") | join("+") }}', 'x+y'],
    ['{{ files | sort(attribute="size") | map(attribute="name") | join }}', 'yx'],
    ['{{ files | selectattr("size", "gt", 1) | map(attribute="name") | join }}', 'x'],
    ['{{ files | sum(attribute="size") }}', '3'],
    ['{{ [3, 1, 3] | unique | list }}', '[3, 1]'],
    ['{{ "a\nb" | indent(2) }}', 'a\n  b'],
    ['{{ {"b": 2, "a": 1} | dictsort }}', "[['a', 1], ['b', 2]]"],
    ['{{ {"k": [1, 2]} | to_yaml }}', 'k:\n  - 1\n  - 2\n'],
  ])('%s', (tpl, want) => {
    expect(r(tpl, ctx)).toBe(want);
  });
  it('rejects unknown filters and tests at compile time, positioned', () => {
    const e = failure(() => compileTemplate('line one\n  {{ x | frobnicate }}', 'f.j2'));
    expect([e.line, e.col, e.reason]).toEqual([2, 10, 'unknown filter "frobnicate"']);
    expect(failure(() => compileTemplate('{{ x is shiny }}', 'f.j2')).reason).toBe('unknown test "shiny"');
  });
  it('suggests the nearest known filter or test for a typo', () => {
    expect(failure(() => compileTemplate('{{ x | defualt("a") }}', 'f.j2')).reason).toBe('unknown filter "defualt" (did you mean "default"?)');
    expect(failure(() => compileTemplate('{{ path | basname }}', 'f.j2')).reason).toBe('unknown filter "basname" (did you mean "basename"?)');
    expect(failure(() => compileTemplate('{{ x is defind }}', 'f.j2')).reason).toBe('unknown test "defind" (did you mean "defined"?)');
    // A filter name given to map() is checked when it runs, with the same hint.
    expect(failure(() => renderTemplate(compileTemplate('{{ xs | map("uper") | list }}', 'f.j2'), { xs: ['a'] })).reason).toBe('unknown filter "uper" (did you mean "upper"?)');
  });
});

describe('statements', () => {
  it('loops with loop.index, first, last, else and a filter', () => {
    const t = '{% for x in xs if x > 1 %}{{ loop.index }}:{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %},{% else %}none{% endfor %}';
    expect(r(t, { xs: [1, 2, 3] })).toBe('1:2F,2:3L,');
    expect(r(t, { xs: [] })).toBe('none');
  });
  it('unpacks pairs and iterates mappings by key', () => {
    expect(r('{% for k, v in m | items %}{{ k }}={{ v }};{% endfor %}{% for k in m %}{{ k }}{% endfor %}', { m: { a: 1, b: 2 } })).toBe('a=1;b=2;ab');
  });
  it('has if/elif/else and set, with loop-local scope as in Jinja', () => {
    const t = '{% set n = 2 %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}{% for i in range(3) %}{% set n = i %}{% endfor %}{{ n }}';
    expect(r(t)).toBe('two2');
  });
  it('drops comments and honours raw blocks', () => {
    expect(r('a{# hidden {{ x }} #}b{% raw %}{{ literally }}{% endraw %}')).toBe('ab{{ literally }}');
  });
  it('controls whitespace like Ansible: trim_blocks on, - strips, + keeps', () => {
    expect(r('{% if true %}\nyes\n{% endif %}\nend')).toBe('yes\nend');
    expect(r('a  {%- if true -%}  b  {%- endif -%}  c')).toBe('abc');
    expect(r('{% if true +%}\nx{% endif %}')).toBe('\nx');
    expect(r('x {{- " y " -}} z')).toBe('x y z');
    expect(r('keep trailing newline\n')).toBe('keep trailing newline\n');
  });
});

describe('errors are positioned in the template', () => {
  it.each([
    ['{% if x %}\nunclosed', 1, 4, '"if" is never closed'],
    ['ok\n{% endfor %}', 2, 4, 'unexpected "endfor"'],
    ['{{ x', 1, 1, 'unclosed tag'],
    ['{{ "abc }}', 1, 4, 'unterminated string literal'],
    ['{% include "other.j2" %}', 1, 4, 'not supported'],
    ['{% frob %}', 1, 4, 'unknown tag "frob"'],
    ['{{ x.y( ) }}', 1, 7, 'calling methods is not supported'],
    ['{{ lipsum() }}', 1, 4, 'calling "lipsum()" is not supported'],
    ['{{ 1 + }}', 1, 8, 'expected an expression'],
  ])('%j', (tpl, line, col, msg) => {
    const e = failure(() => compileTemplate(tpl, 'bad.j2'));
    expect(e.template).toBe('bad.j2');
    expect([e.line, e.col]).toEqual([line, col]);
    expect(e.reason).toContain(msg);
    expect(e.message).toMatch(/^bad\.j2:\d+:\d+: /);
  });
  it('reports an undefined name where it is used, with the names that exist', () => {
    const e = failure(() => r('dir: {{ models.face_recognitio.dir }}', { models: { face_recognition: { dir: '/d' } } }));
    expect([e.line, e.col]).toEqual([1, 32]);
    expect(e.reason).toBe('models.face_recognitio.dir is undefined: models.face_recognitio does not exist (known: face_recognition)');
  });
  it('refuses to iterate undefined or to do arithmetic on mixed types', () => {
    expect(failure(() => r('{% for x in nope %}{% endfor %}')).reason).toContain('nope is undefined');
    expect(failure(() => r('{{ "a" + 1 }}')).reason).toContain('cannot add');
    expect(failure(() => r('{{ 1 / 0 }}')).reason).toBe('division by zero');
  });
});

describe('hostile templates cannot escape or exhaust the host', () => {
  it.each([
    '{{ x.constructor }}',
    '{{ x.__proto__ }}',
    '{{ x["constructor"] }}',
    '{{ x.__class__ }}',
    '{{ x.prototype }}',
    '{% set __proto__ = 1 %}',
  ])('compile error: %s', (tpl) => {
    expect(failure(() => compileTemplate(tpl, 'h.j2')).reason).toMatch(/not allowed|cannot be assigned/);
  });
  it('blocks computed prototype access at render time', () => {
    expect(failure(() => r('{{ x["con" ~ "structor"] }}', { x: {} })).reason).toContain('not allowed');
    expect(failure(() => r('{{ x[k] }}', { x: {}, k: '__proto__' })).reason).toContain('not allowed');
    expect(failure(() => r('{{ {"__proto__": 1} }}')).reason).toContain('cannot be used as a key');
  });
  it('sees only own data of plain objects: no inherited names, getters, functions or class instances', () => {
    const proto = { secret: 's' };
    const inherited = Object.create(proto) as object;
    expect(() => r('{{ x.secret }}', { x: inherited })).toThrow(/not plain data/);
    expect(r('{{ x.toString is defined }} {{ x.hasOwnProperty is defined }} {{ xs.length is defined }} {{ s.length is defined }}', { x: {}, xs: [], s: 'ab' })).toBe('False False False False');
    let called = false;
    const withGetter = Object.defineProperty({}, 'g', { enumerable: true, get: () => ((called = true), 'x') });
    expect(() => r('{{ x.g }}', { x: withGetter })).toThrow(/accessor/);
    expect(called).toBe(false);
    expect(() => r('{{ f }}', { f: () => 1 })).toThrow(/not plain data/);
    expect(() => r('{{ d }}', { d: new Date(0) })).toThrow(/not plain data/);
  });
  it('cannot call anything but range()', () => {
    expect(failure(() => compileTemplate('{{ range.constructor("return process")() }}', 'h.j2')).reason).toMatch(/not allowed|not supported/);
    expect(failure(() => compileTemplate('{{ (x)() }}', 'h.j2')).reason).toContain('calling values is not supported');
  });
  it('bounds loop iterations, including nested loops', () => {
    expect(failure(() => r('{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}')).reason).toContain('iterations');
  });
  it('bounds output size', () => {
    expect(failure(() => r('{% for i in range(100) %}{{ "x" * 100 }}{% endfor %}', {}, { maxOutput: 5000 })).reason).toContain('output is larger');
  });
  it('bounds strings and lists built by operators and filters before they exist', () => {
    expect(failure(() => r('{{ "x" * 100000000 }}')).reason).toContain('string of 100000000');
    expect(failure(() => r('{{ range(100000000) }}')).reason).toContain('list of 100000000');
    // Doubling a string 40 times (set inside a loop is loop-local in Jinja, so unroll it).
    expect(failure(() => r(`{% set s = "xxxxxxxxxx" %}${'{% set s = s ~ s %}'.repeat(40)}{{ s }}`)).reason).toMatch(/string of/);
    expect(failure(() => r('{{ s | replace("a", "bbbbbbbbbbbbbbbbbbbb") }}', { s: 'a'.repeat(100_000) })).reason).toContain('string of');
  });
  it('bounds total work (many medium strings)', () => {
    const tpl = '{% for i in range(100000) %}{% set x = big ~ "" %}{% endfor %}';
    expect(failure(() => r(tpl, { big: 'y'.repeat(10_000) })).reason).toContain('too much work');
  });
  it('bounds printing a structure that references one big value many times', () => {
    expect(failure(() => r('{% set l = [s] * 50000 %}{{ l | tojson }}', { s: 'z'.repeat(1000) })).reason).toMatch(/string of/);
  });
  it('refuses deeply nested expressions instead of overflowing the stack', () => {
    expect(failure(() => compileTemplate(`{{ ${'('.repeat(500)}1${')'.repeat(500)} }}`, 'h.j2')).reason).toContain('nested');
    expect(failure(() => compileTemplate(`{{ ${'not '.repeat(500)}1 }}`, 'h.j2')).reason).toContain('nested');
    expect(failure(() => compileTemplate('{% if 1 %}'.repeat(100), 'h.j2')).reason).toContain('nested');
  });
  it('cannot change the context it was given', () => {
    const ctx = { xs: [1], m: { a: 1 } };
    r('{% set xs = [2] %}{% set m = {} %}{{ xs }}', ctx);
    expect(ctx).toEqual({ xs: [1], m: { a: 1 } });
  });
});

describe('hostile templates, through filters and statements', () => {
  const people = { xs: [{ name: 'b', n: 2 }, { name: 'a', n: 1 }], m: { k: 'v' } };
  it.each([
    '{{ xs | sort(attribute="__proto__") }}',
    '{{ xs | sort(attribute="name.constructor") }}',
    '{{ xs | map(attribute="constructor") | list }}',
    '{{ xs | map(attribute="__proto__.polluted", default=1) | list }}',
    '{{ xs | selectattr("__proto__") | list }}',
    '{{ xs | rejectattr("constructor", "defined") | list }}',
    '{{ xs | unique(attribute="constructor") | list }}',
    '{{ xs | sum(attribute="__proto__") }}',
    '{{ xs | join(",", attribute="constructor") }}',
    '{{ xs | groupby("x") }}',
  ])('a filter cannot reach a prototype: %s', (tpl) => {
    const err = failure(() => r(tpl, people));
    expect(err.reason).toMatch(/not allowed|unknown filter/);
  });
  it('a filter or test named after a built-in is unknown, not Object\'s', () => {
    expect(failure(() => r('{{ xs | map("constructor") | list }}', people)).reason).toContain('unknown filter "constructor"');
    expect(failure(() => r('{{ xs | map("toString") | list }}', people)).reason).toContain('unknown filter "toString"');
    expect(failure(() => r('{{ xs | select("constructor") | list }}', people)).reason).toContain('unknown test "constructor"');
    expect(failure(() => r('{{ xs | selectattr("name", "hasOwnProperty") | list }}', people)).reason).toContain('unknown test "hasOwnProperty"');
    expect(r('{{ "__proto__" in m }} {{ "constructor" in m }} {{ "k" in m }}', people)).toBe('False False True');
  });
  it('set shadows a name for the rest of its scope only, and cannot rebind range() or loop', () => {
    expect(r('{% set models = {"x": 1} %}{{ models.x }}', { models: { y: 2 } })).toBe('1');
    expect(r('{% for i in [1] %}{% set site = "inner" %}{% endfor %}{{ site }}', { site: 'outer' })).toBe('outer');
    expect(r('{% set range = 3 %}{{ range(2) }}')).toBe('[0, 1]');
    expect(failure(() => r('{% for i in [1] %}{% set loop = 5 %}{% endfor %}')).reason).toContain('"loop" cannot be assigned');
  });
  it('has no recursion: recursive loops and macros are compile errors; self-similar values stay bounded', () => {
    expect(failure(() => compileTemplate('{% for x in xs recursive %}{{ loop(x) }}{% endfor %}', 'h.j2')).reason).toContain('recursive loops are not supported');
    expect(failure(() => compileTemplate('{% macro f() %}{{ f() }}{% endmacro %}', 'h.j2')).reason).toContain('"macro" tag is not supported');
    // Each doubling shares its halves: 2^40 leaves in a few kilobytes of template.
    const doubled = (v: string): string => `{% set ${v} = [] %}${`{% set ${v} = [${v}, ${v}] %}`.repeat(40)}`;
    expect(failure(() => r(`${doubled('x')}{{ x }}`)).reason).toMatch(/string of|too much work/);
    expect(failure(() => r(`${doubled('x')}${doubled('y')}{{ x == y }}`)).reason).toContain('too much work');
    expect(failure(() => r(`${doubled('x')}{{ x | tojson }}`)).reason).toMatch(/string of|too much work/);
    expect(r(`${doubled('x')}{{ x == x }}`)).toBe('True');
  });
  it('multiplies strings and lists only by integers, within the limits', () => {
    expect(r('[{{ "ab" * 3 }}] [{{ "ab" * 0 }}] [{{ "ab" * -2 }}] {{ [1] * 3 }}')).toBe('[ababab] [] [] [1, 1, 1]');
    expect(failure(() => r('{{ "x" * 2.5 }}')).reason).toContain('cannot multiply a string by a float');
    expect(failure(() => r('{{ [1, 2] * 100000 }}')).reason).toContain('list of 200000');
    expect(failure(() => r('{{ "x" * 9007199254740991 }}')).reason).toContain('would build a string');
  });
  it('refuses huge ranges before building them, whatever the step', () => {
    expect(failure(() => r('{{ range(9007199254740991) | length }}')).reason).toContain('list of 9007199254740991 items');
    expect(failure(() => r('{{ range(0, 1000000000, 3) | length }}')).reason).toContain('list of 333333334 items');
    expect(failure(() => r('{{ range(1000000000, 0, -1) | length }}')).reason).toContain('list of 1000000000 items');
    expect(failure(() => r('{{ range(0, 10, 0) }}')).reason).toContain('step cannot be zero');
    expect(r('{{ range(10, 0, -3) }}')).toBe('[10, 7, 4, 1]');
  });
  it('replace, split and "in" take their pattern literally (no regular expressions to blow up)', () => {
    expect(r('{{ "a.b.c" | replace(".", "+") }} {{ "(a+)+$" | replace("(a+)+$", "ok") }} {{ "a*b" | split("*") }}')).toBe("a+b+c ok ['a', 'b']");
    const s = 'a'.repeat(200_000);
    expect(r('{{ s | replace(p, "x") | length }} {{ p in s }} {{ s | split(q) | length }}', { s, p: `${'a'.repeat(5000)}b`, q: `b${'a'.repeat(5000)}` })).toBe('200000 False 1');
  });
  it.each<[string, string, Record<string, unknown>]>([
    ['unique over a big list', '{{ r | unique | length }}{% for i in range(200) %}{% set u = r | unique %}{% endfor %}', {}],
    ['slicing in a loop', '{% for i in range(2000) %}{% set x = r[::1] %}{% endfor %}', {}],
    ['slicing a long string in a loop', '{% for i in range(3000) %}{% set x = s[::-1] %}{% endfor %}', { s: 'ab'.repeat(500_000) }],
    ['membership in a loop', '{% for i in range(3000) %}{% if -1 in r %}{% endif %}{% endfor %}', {}],
    ['comparing big lists in a loop', '{% set q = range(100000) %}{% for i in range(3000) %}{% if r == q %}{% endif %}{% endfor %}', {}],
    ['select in a loop', '{% for i in range(1000) %}{% set x = r | select("odd") | list %}{% endfor %}', {}],
    ['max in a loop', '{% for i in range(1000) %}{% set x = r | max %}{% endfor %}', {}],
    ['comparing long strings in a loop', '{% for i in range(50000) %}{% if a == b %}{% endif %}{% endfor %}', { a: 'x'.repeat(1_000_000), b: 'x'.repeat(1_000_000) }],
    ['sorting long strings case-insensitively in a loop', '{% for i in range(5000) %}{% set x = [a, b, a] | sort %}{% endfor %}', { a: 'x'.repeat(1_000_000), b: 'y'.repeat(1_000_000) }],
    ['sorting by a long attribute path', '{{ xs | map(attribute=a, default=0) | list | length }}', { xs: Array.from({ length: 20_000 }, () => ({})), a: 'v.'.repeat(2000) }],
  ])('bounds the work of %s', (_what, body, ctx) => {
    expect(failure(() => r(`{% set r = range(100000) %}${body}`, ctx)).reason).toContain('too much work');
  });
  it('unique is linear and Jinja-compatible: case-insensitive by default, first kept, by attribute', () => {
    expect(r('{{ range(100000) | unique | length }}')).toBe('100000');
    expect(r('{{ ["A", "a", "b", "B"] | unique }} {{ ["A", "a"] | unique(case_sensitive=true) }}')).toBe("['A', 'b'] ['A', 'a']");
    expect(r('{{ xs | unique(attribute="n") | map(attribute="name") | join }}', { xs: [{ name: 'x', n: 1 }, { name: 'y', n: 1 }, { name: 'z', n: 2 }] })).toBe('xz');
    expect(r('{{ [[1, 2], [1, 2], {"a": 1}, {"a": 1}, {"a": 2}] | unique }}')).toBe("[[1, 2], {'a': 1}, {'a': 2}]");
  });
  it('counts, indexes and slices code points as Python does, never half an emoji', () => {
    expect(r('{{ s | length }} {{ s[0] }} {{ s[1:3] }} {{ s[-1] }} {{ s | reverse }}', { s: '😀é🚀x' })).toBe('4 😀 é🚀 x x🚀é😀');
    expect(r('{{ "straße" | upper }} {{ "ǅ" | lower }}')).toBe('STRASSE ǆ');
    expect(failure(() => r('{{ s | upper }}', { s: 'ﬃ'.repeat(400_000) })).reason).toContain('would build a string of 1200000');
  });
  it('refuses an indent wider than any string may be before building it', () => {
    expect(failure(() => r('{{ "a\nb" | indent(300000000) }}')).reason).toContain('string of 300000000');
    expect(r('{{ "a\nb" | indent(2, true) }}')).toBe('  a\n  b');
  });
});

describe('templateContext', () => {
  it('gives each model its version, dir and files with absolute paths', () => {
    const ctx = templateContext({
      site: { name: 'beta', labels: { region: 'north' } },
      models: [{ name: 'face_recognition', version: '2025-12-08', dir: '/s/models/face_recognition/2025-12-08', files: [{ name: 'facemodel.pickle', sha256: 'a'.repeat(64), size: 3 }] }],
    });
    expect(r('{{ site.name }} {{ site.labels.region }} {{ models.face_recognition.dir }}/facemodel.pickle {{ models.face_recognition.files[0].path }}', ctx)).toBe(
      'beta north /s/models/face_recognition/2025-12-08/facemodel.pickle /s/models/face_recognition/2025-12-08/facemodel.pickle',
    );
  });
});
