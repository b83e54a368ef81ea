/**
 * validate reports the root of a problem, not its echoes: a broken
 * model_registry.yaml is one problem (not one "not declared" per site
 * reference), and an override of an unpublished version says which are.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.ts';
import { loadRegistry } from '../../src/registry/load.ts';
import { WorkTreeSource } from '../../src/registry/source.ts';
import { tempDir, writeTree } from '../helpers/env.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

function base(): Record<string, string> {
  const version = (v: string, body: string) => ({
    [`registry/det/${v}/manifest.yaml`]: `name: det\nversion: "${v}"\nfiles:\n  - name: w.bin\n    sha256: ${sha(body)}\n    size: ${body.length}\n`,
    [`registry/det/${v}/w.bin`]: body,
  });
  return {
    'registry/model_registry.yaml': 'models:\n  det:\n    current_version: "2025-01-10"\n  ssd:\n    current_version: "1"\n',
    ...version('2025-01-10', 'ten'),
    ...version('2025-01-02', 'two'),
    ...version('2025-01-01', 'one'),
    'registry/ssd/1/manifest.yaml': `name: ssd\nversion: "1"\nfiles:\n  - name: w.bin\n    sha256: ${sha('s')}\n    size: 1\n`,
    'registry/ssd/1/w.bin': 's',
    'sites/alpha.yaml': 'models: [det, ssd]\noverrides: {det: "2025-01-02"}\ntemplates:\n  - src: templates/t.yaml.j2\n    dest: t.yaml\n    models: [det]\n',
    'sites/beta.yaml': 'models: [ssd]\n',
    'templates/t.yaml.j2': 'weights: {{ models.det.dir }}/w.bin\n',
  };
}

async function problems(files: Record<string, string>): Promise<string[]> {
  const dir = tempDir();
  writeTree(dir, files);
  return (await loadRegistry(new WorkTreeSource(dir))).problems.map(formatProblem);
}

describe('validate: root causes, not cascades', () => {
  it('accepts the fixture', async () => {
    expect(await problems(base())).toEqual([]);
  });

  it('a model_registry.yaml that does not parse is one problem, not one per site reference', async () => {
    const f = base();
    f['registry/model_registry.yaml'] = 'models:\n  det: [current_version: "2025-01-10"\n';
    const got = await problems(f);
    expect(got.length).toBeGreaterThan(0);
    expect(got.every((p) => p.startsWith('registry/model_registry.yaml:')), got.join('\n')).toBe(true);
  });

  it('a model_registry.yaml off its schema is reported there, without "not declared" echoes in the sites', async () => {
    const f = base();
    f['registry/model_registry.yaml'] = 'models:\n  det:\n    current_version: "2025-01-10"\n  ssd:\n    curent_version: "1"\n';
    const got = await problems(f);
    expect(got.some((p) => p.startsWith('registry/model_registry.yaml:5:5: models.ssd'))).toBe(true);
    expect(got.filter((p) => p.includes('is not declared')), got.join('\n')).toEqual([]);
    // What still loaded is still checked: the override of det is fine, so nothing is said about it.
    expect(got.filter((p) => p.startsWith('sites/'))).toEqual([]);
  });

  it('one misspelt key in one model hides nothing else: a site naming an undeclared model and a broken template still show', async () => {
    const f = base();
    f['registry/model_registry.yaml'] = 'models:\n  det:\n    current_version: "2025-01-10"\n  ssd:\n    curent_version: "1"\n';
    f['sites/beta.yaml'] = 'models: [ssd, sdd]\n';
    f['templates/t.yaml.j2'] = 'weights: {{ models.zzz.dir }}/w.bin\n';
    f['sites/alpha.yaml'] = 'models: [det]\ntemplates:\n  - src: templates/t.yaml.j2\n    dest: t.yaml\n    models: [det]\n';
    const got = await problems(f);
    expect(got.some((p) => p.startsWith('registry/model_registry.yaml:5:5: models.ssd'))).toBe(true);
    // ssd is declared (its entry is broken): not an echo. sdd is not: a real problem of its own.
    expect(got.filter((p) => p.includes('is not declared')), got.join('\n')).toEqual(['sites/beta.yaml:1:15: models[1]: model "sdd" is not declared in registry/model_registry.yaml']);
    // alpha uses only det, which loaded: its template is still rendered, and the missing model found.
    expect(got.some((p) => p.startsWith('templates/t.yaml.j2:') && p.includes('rendering for site alpha')), got.join('\n')).toBe(true);
  });

  it('a missing model_registry.yaml is one problem', async () => {
    const f = base();
    delete f['registry/model_registry.yaml'];
    expect(await problems(f)).toEqual(['registry/model_registry.yaml:1:1: file is missing (every registry declares its models here)']);
  });

  it('an override of an unpublished version lists the published ones, in version order', async () => {
    const f = base();
    f['sites/alpha.yaml'] = 'overrides: {det: "2025-01-03"}\n';
    expect(await problems(f)).toEqual([
      'sites/alpha.yaml:1:18: overrides.det: version "2025-01-03" of det is not published (published: 2025-01-01, 2025-01-02, 2025-01-10)',
    ]);
  });
});
