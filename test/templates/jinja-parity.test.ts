/**
 * modelsync's templates against Python's jinja2 (Debian's python3-jinja2),
 * configured as Ansible does (trim_blocks), byte for byte. The corpus covers
 * what registry templates do: loops, filters, whitespace control, tests and
 * arithmetic, numbers above all (an integer where a config had a float is a
 * different config). The only differences allowed are the documented ones
 * (docs/registry.md: no method calls, strict undefined, the sandbox), and no
 * template here relies on them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileTemplate, renderTemplate, templateContext } from '../../src/templates/index.ts';
import { ROOT } from '../helpers/env.ts';

const context = templateContext({
  site: { name: 'alpha', labels: { region: 'north', tier: 'edge' } },
  models: [
    { name: 'face_recognition', version: '2026-01-15', dir: '/var/lib/modelsync/models/face_recognition/2026-01-15', files: [
      { name: 'facemodel.pickle', sha256: 'a'.repeat(64), size: 1_048_576 },
      { name: 'labels.txt', sha256: 'b'.repeat(64), size: 2_500 },
    ] },
    { name: 'mobilenet_ssd', version: '3', dir: '/var/lib/modelsync/models/mobilenet_ssd/3', files: [{ name: 'w.bin', sha256: 'c'.repeat(64), size: 7 }] },
  ],
});

const CORPUS: Record<string, string> = {
  division: '{{ 4 / 2 }} {{ 10 / 4 }} {{ 1 / 3 }} {{ 2 / 3 }} {{ 10 / 5 * 2 }} {{ (7 / 2) | int }} {{ 1 / 8 }}\n',
  literals: '{{ 1.0 }} {{ 2 }} {{ 1e3 }} {{ 1.5e-7 }} {{ 0.0001 }} {{ 0.00001 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.0 * 1000000000 }} {{ -0.0 }} {{ 1_000 }} {{ 1e100 }} {{ 3.14159 }}\n',
  floor_and_modulo: '{{ 7 // 2 }} {{ -7 // 2 }} {{ 7.5 // 2 }} {{ -7.5 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 5.5 % 2 }} {{ -5.5 % 2 }} {{ 6 % 3 }} {{ 6.0 % 3 }}\n',
  power: '{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2.0 ** 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 9 ** 0.5 }} {{ 0 ** 0 }}\n',
  mixed: '{{ 1 + 2.0 }} {{ 3 * 1.5 }} {{ 10 - 0.5 }} {{ 0.1 + 0.2 }} {{ 2 * 2 }} {{ 2.5 * 2 }} {{ -(1.5) }} {{ -(3) }} {{ 1 + 1 == 2.0 }} {{ 2 < 2.5 }} {{ 1.0 in [1, 2] }}\n',
  round: '{{ 2.5 | round }} {{ 3.5 | round }} {{ 42.55 | round }} {{ 42.55 | round(1, "floor") }} {{ 2.675 | round(2) }} {{ 0.125 | round(2) }} {{ 1.96 | round(1) }} {{ 5 | round }} {{ 1.5 | round(0, "ceil") }} {{ 1234.5 | round(-2) }} {{ 42.55 | round | int }}\n',
  conversions: '{{ 3.7 | int }} {{ "3.7" | int }} {{ "42" | int }} {{ 3 | float }} {{ "2.50" | float }} {{ (-3.5) | abs }} {{ (-3) | abs }} {{ 3 | float | string }} {{ 3.0 ~ "" }} {{ "x" | float }} {{ true | int }}\n',
  aggregates: '{{ [1, 2.5, 3] | sum }} {{ [1, 2, 3] | sum }} {{ [3, 1.5, 2] | max }} {{ [3, 1.5, 2] | min }} {{ [1, 2.0] | tojson }} {{ {"b": 1.0, "a": 2} | tojson }} {{ [0.5, 1] | sum(start=1) }} {{ [2, 1.5] | sort | list }}\n',
  repr: '{{ [1, 2.0, "x", none, true] }} {{ {"a": 1.0, "b": [0.5]} }} {{ (1, 2.5) | list }}\n',
  tests: '{{ 4 is even }} {{ 3 is odd }} {{ 2.0 is float }} {{ 2 is integer }} {{ 2.0 is integer }} {{ 1.5 is number }} {{ 9 is divisibleby 3 }} {{ none is none }} {{ "a" is string }} {{ site is mapping }} {{ site.nope is defined }} {{ site is defined }} {{ [] is sequence }}\n',
  loops: `{% for m in models | dictsort %}
- {{ loop.index }}/{{ loop.length }} {{ m[0] }}: {{ m[1].version }}{% if loop.first %} (first){% endif %}{% if loop.last %} (last){% endif %}

{% endfor %}
{% for f in models.face_recognition.files if f.size > 5000 %}
big: {{ f.name }} {{ (f.size / 1048576) }} MiB
{% else %}
none big
{% endfor %}
{% for x in [] %}{{ x }}{% else %}empty{% endfor %}
{% for i in range(1, 10, 3) %}{{ i }}{{ "," if not loop.last }}{% endfor %}

`,
  whitespace: `services:
{%- for name in ["a", "b"] %}
  - {{ name -}}
{% endfor %}
  {{- " tail" }}
{# a comment #}
{% if site.labels.region == "north" %}
north: yes
{% elif site.labels.region == "south" %}
south: yes
{% else %}
other
{% endif %}
{%- set n = 3 %}
n={{ n }}
{% raw %}{{ not rendered }}{% endraw %}
`,
  filters: '{{ "hello world" | title }} {{ "  x  " | trim }} {{ ["b", "a", "c"] | sort | join(",") }} {{ "abc" | upper }} {{ "ABC" | lower }} {{ "x" | capitalize }} {{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ [3, 1, 3] | unique | list }} {{ [1, 2] | reverse | list }} {{ "abc" | length }} {{ "a-b" | replace("-", "+") }} {{ [1, 2, 3, 4] | select("even") | list }} {{ [1, 2, 3, 4] | reject("odd") | list }} {{ models.face_recognition.files | map(attribute="size") | list }} {{ models.face_recognition.files | selectattr("size", "gt", 3000) | map(attribute="name") | join }} {{ site.nope | default(1.5) }} {{ "a\\nb" | indent(2) }}\n',
  config: `# rendered for {{ site.name }} ({{ site.labels.region }})
{% set fr = models.face_recognition %}
task: FaceRecon
model_version: "{{ fr.version }}"
recognizer: {{ fr.dir }}/facemodel.pickle
threshold: {{ 0.6 }}
scale: {{ 1.0 }}
fps: {{ 30 / 2 }}
batch: {{ 64 // 8 }}
budget_mb: {{ (fr.files | map(attribute="size") | sum / 1048576) | round(2) }}
files:
{% for f in fr.files | sort(attribute="name") %}
  - {{ f.path }}  # {{ f.size }} bytes
{% endfor %}
`,
};

function jinja(templates: Record<string, string>): Record<string, { out?: string; error?: string }> {
  const r = spawnSync('/usr/bin/python3', [join(ROOT, 'test/templates/jinja-render.py')], { input: JSON.stringify({ context, templates }), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 jinja2 failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, { out?: string; error?: string }>;
}

describe('templates render as Python jinja2 renders them (trim_blocks, as Ansible)', () => {
  const expected = jinja(CORPUS);
  it.each(Object.keys(CORPUS))('%s', (name) => {
    const want = expected[name]!;
    expect(want.error, `jinja2 itself failed on ${name}`).toBeUndefined();
    const got = renderTemplate(compileTemplate(CORPUS[name]!, `${name}.j2`), context);
    expect(got).toBe(want.out);
  });
});
