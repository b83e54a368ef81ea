/**
 * validate on bad input: every problem positioned as file:line:col with the
 * YAML path, from the working tree, through the real CLI where the format
 * matters.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.ts';
import { loadRegistry } from '../../src/registry/load.ts';
import { WorkTreeSource } from '../../src/registry/source.ts';
import { cli, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

function base(): Record<string, string> {
  return {
    'registry/model_registry.yaml': 'models:\n  det:\n    current_version: "2025-01-02"\n    previous_version: "2025-01-01"\n',
    'registry/det/2025-01-01/manifest.yaml': `name: det\nversion: "2025-01-01"\nfiles:\n  - name: w.bin\n    sha256: ${sha('one')}\n    size: 3\n`,
    'registry/det/2025-01-01/w.bin': 'one',
    'registry/det/2025-01-02/manifest.yaml': `name: det\nversion: "2025-01-02"\nfiles:\n  - name: w.bin\n    sha256: ${sha('two!')}\n    size: 4\n`,
    'registry/det/2025-01-02/w.bin': 'two!',
    'sites/alpha.yaml': 'schedule: "*/5 * * * *"\ntemplates:\n  - src: templates/t.yaml.j2\n    dest: t.yaml\n',
    'sites/groups/g.yaml': 'labels: {tier: x}\n',
    'templates/t.yaml.j2': 'weights: {{ models.det.dir }}/w.bin\n',
  };
}

async function problems(files: Record<string, string>): Promise<string[]> {
  const dir = tempDir();
  writeTree(dir, files);
  const { problems } = await loadRegistry(new WorkTreeSource(dir));
  return problems.map(formatProblem);
}

describe('validate: bad input gets a precise error', () => {
  it('accepts the base fixture', async () => {
    expect(await problems(base())).toEqual([]);
  });

  it.each<[string, (f: Record<string, string>) => void, string]>([
    ['malformed YAML', (f) => (f['registry/model_registry.yaml'] = 'models:\n  det: [unclosed\n'), 'registry/model_registry.yaml:3:1: YAML:'],
    ['a misspelt key', (f) => (f['registry/model_registry.yaml'] = 'models:\n  det:\n    curent_version: "2025-01-02"\n'),
      'registry/model_registry.yaml:3:5: models.det.curent_version: unknown key "curent_version" (did you mean "current_version"?)'],
    ['a missing key', (f) => (f['registry/det/2025-01-01/manifest.yaml'] = `name: det\nfiles:\n  - name: w.bin\n    sha256: ${sha('one')}\n    size: 3\n`),
      'registry/det/2025-01-01/manifest.yaml:1:1: version: required key "version" is missing'],
    ['a wrong type', (f) => (f['registry/det/2025-01-01/manifest.yaml'] = `name: det\nversion: "2025-01-01"\nfiles:\n  - name: w.bin\n    sha256: ${sha('one')}\n    size: three\n`),
      'registry/det/2025-01-01/manifest.yaml:6:11: files[0].size: expected number, got string "three"'],
    ['a wrong hash', (f) => (f['registry/det/2025-01-01/w.bin'] = 'ONE'),
      `registry/det/2025-01-01/manifest.yaml:5:13: files[0].sha256: does not match the content of registry/det/2025-01-01/w.bin (sha256 ${sha('ONE')})`],
    ['a wrong size', (f) => (f['registry/det/2025-01-01/w.bin'] = 'one more'),
      'registry/det/2025-01-01/manifest.yaml:6:11: files[0].size: is 3 but registry/det/2025-01-01/w.bin has 8 bytes'],
    ['duplicate file names', (f) => (f['registry/det/2025-01-01/manifest.yaml'] += `  - name: W.bin\n    sha256: ${sha('one')}\n    size: 3\n`),
      'registry/det/2025-01-01/manifest.yaml:7:11: files[1].name: duplicate file name "W.bin" (also files[0])'],
    ['a path escape', (f) => (f['registry/det/2025-01-01/manifest.yaml'] = `name: det\nversion: "2025-01-01"\nfiles:\n  - name: ../../../etc/passwd\n    sha256: ${sha('one')}\n    size: 3\n`),
      'registry/det/2025-01-01/manifest.yaml:4:11: files[0].name: unsafe path "../../../etc/passwd": must not contain ".."'],
    ['a version folder without manifest', (f) => (f['registry/det/2025-02-01/w.bin'] = 'x'), 'registry/det/2025-02-01/:1:1: version folder has no manifest.yaml'],
    ['current_version naming no published version', (f) => (f['registry/model_registry.yaml'] = 'models:\n  det:\n    current_version: "2025-03-01"\n'),
      'registry/model_registry.yaml:3:22: models.det.current_version: version "2025-03-01" of det is not published (no registry/det/2025-03-01/manifest.yaml)'],
    ['a broken template', (f) => (f['templates/t.yaml.j2'] = 'a: 1\nweights: {{ models.det.dir }/w.bin\n'), 'templates/t.yaml.j2:2:'],
    ['a template reading a model the site does not run', (f) => (f['templates/t.yaml.j2'] = 'x: {{ models.nope.dir }}\n'),
      'templates/t.yaml.j2:1:19: rendering for site alpha: models.nope.dir is undefined: models.nope does not exist (known: det)'],
    ['a missing template', (f) => delete f['templates/t.yaml.j2'], 'sites/alpha.yaml:3:10: templates[0].src: template templates/t.yaml.j2 does not exist'],
    ['a bad cron', (f) => (f['sites/alpha.yaml'] = 'schedule: "every five minutes"\n'), 'sites/alpha.yaml:1:11: schedule: "every five minutes" is not a valid cron expression'],
    ['a cron minute out of its range', (f) => (f['sites/alpha.yaml'] = 'schedule: "61 * * * *"\n'),
      'sites/alpha.yaml:1:11: schedule: "61 * * * *" is not a valid cron expression (minute 61 is out of 0–59)'],
    ['a cron step larger than its field', (f) => (f['sites/alpha.yaml'] = 'schedule: "*/61 * * * *"\n'),
      'sites/alpha.yaml:1:11: schedule: "*/61 * * * *" is not a valid cron expression (minute step 61 is out of 1–59)'],
    ['an extends cycle', (f) => {
      f['sites/groups/g.yaml'] = 'extends: [groups/h]\n';
      f['sites/groups/h.yaml'] = 'extends: [groups/g]\n';
    }, 'sites/groups/g.yaml:1:10: extends: extends forms a cycle: groups/g -> groups/h -> groups/g'],
    ['an override of an unpublished version', (f) => (f['sites/alpha.yaml'] = 'overrides:\n  det: "2024-12-31"\n'),
      'sites/alpha.yaml:2:8: overrides.det: version "2024-12-31" of det is not published'],
    ['a file named like the manifest, in another case', (f) => (f['registry/det/2025-01-01/manifest.yaml'] += `  - name: Manifest.YAML\n    sha256: ${sha('one')}\n    size: 3\n`),
      'registry/det/2025-01-01/manifest.yaml:7:11: files[1].name: "manifest.yaml" is reserved for the manifest itself'],
    ['two templates writing the same file', (f) => (f['sites/alpha.yaml'] += '  - src: templates/t.yaml.j2\n    dest: t.yaml\n'),
      'sites/alpha.yaml:6:11: templates[1].dest: t.yaml is also written by templates[0]'],
    ['a template dest escaping config_dir', (f) => (f['sites/alpha.yaml'] = 'templates:\n  - src: templates/t.yaml.j2\n    dest: ../bin/run.sh\n'),
      'sites/alpha.yaml:3:11: templates[0].dest: unsafe path "../bin/run.sh": must not contain ".."'],
    ['a template dest that is the agent\'s record of what it rendered', (f) => (f['sites/alpha.yaml'] = 'templates:\n  - src: templates/t.yaml.j2\n    dest: .modelsync-rendered.json\n'),
      'sites/alpha.yaml:3:11: templates[0].dest: ".modelsync-rendered.json" is reserved: .modelsync-rendered.json is where the agent records what it rendered'],
    ['a version breaking the scheme', (f) => {
      f['registry/det/v3/manifest.yaml'] = `name: det\nversion: v3\nfiles:\n  - name: w.bin\n    sha256: ${sha('one')}\n    size: 3\n`;
      f['registry/det/v3/w.bin'] = 'one';
    }, 'versions of det follow no single scheme'],
  ])('%s', async (_what, breakIt, expected) => {
    const f = base();
    breakIt(f);
    const got = await problems(f);
    expect(got.some((p) => p.startsWith(expected) || p.includes(expected)), `expected a problem like\n  ${expected}\ngot\n  ${got.join('\n  ')}`).toBe(true);
  });

  it('reports every problem at once and exits 1 through the CLI, with --json', () => {
    const f = base();
    f['registry/det/2025-01-01/w.bin'] = 'ONE';
    f['sites/alpha.yaml'] = 'schedul: "*/5 * * * *"\n';
    const dir = tempDir();
    writeTree(dir, f);
    const env = isolatedGitEnv();
    const text = cli(['validate', '--repo', dir], { cwd: dir, env });
    expect(text.status).toBe(1);
    expect(text.stdout).toContain('registry/det/2025-01-01/manifest.yaml:5:13: files[0].sha256: does not match');
    expect(text.stdout).toContain('sites/alpha.yaml:1:1: schedul: unknown key "schedul" (did you mean "schedule"?)');
    expect(text.stdout).toContain('2 problems in working tree');
    const json = cli(['validate', '--repo', dir, '--json'], { cwd: dir, env });
    expect(json.status).toBe(1);
    const doc = JSON.parse(json.stdout) as { ok: boolean; problems: Array<{ file: string; line: number; col: number; path: string }> };
    expect(doc.ok).toBe(false);
    expect(doc.problems.map((p) => `${p.file}:${p.line}:${p.col}:${p.path}`).sort()).toEqual([
      'registry/det/2025-01-01/manifest.yaml:5:13:files[0].sha256',
      'sites/alpha.yaml:1:1:schedul',
    ]);
  });

  it('a schema error in a site or manifest does not hide the cross-file problems of the rest of it', async () => {
    const f = base();
    f['sites/alpha.yaml'] = 'labels: {tier: 1}\nmodels: [det, nope]\noverrides: {det: "2024-12-31"}\nschedule: "soon"\nextends: [groups/missing]\n';
    f['registry/det/2025-01-01/manifest.yaml'] =
      `name: other\nversion: "2025-01-01"\nfiles:\n  - name: w.bin\n    sha256: nothex\n    size: 3\n  - name: gone.bin\n    sha256: ${sha('x')}\n    size: 1\n`;
    const got = await problems(f);
    expect(got).toEqual(expect.arrayContaining([
      'sites/alpha.yaml:1:16: labels.tier: expected string, got number 1',
      'sites/alpha.yaml:2:15: models[1]: model "nope" is not declared in registry/model_registry.yaml',
      'sites/alpha.yaml:3:18: overrides.det: version "2024-12-31" of det is not published (published: 2025-01-01, 2025-01-02)',
      'sites/alpha.yaml:4:11: schedule: "soon" is not a valid cron expression (five or six fields, e.g. "*/15 * * * *")',
      'sites/alpha.yaml:5:11: extends[0]: "groups/missing" does not resolve (expected sites/groups/missing.yaml)',
      'registry/det/2025-01-01/manifest.yaml:5:13: files[0].sha256: must be 64 lowercase hex characters (a sha256)',
      'registry/det/2025-01-01/manifest.yaml:1:7: name: is "other" but the manifest is in the folder of model "det"',
      'registry/det/2025-01-01/manifest.yaml:7:11: files[1].name: file registry/det/2025-01-01/gone.bin is missing',
    ]));
    // w.bin failed the schema but is listed: not reported as an unlisted file.
    expect(got.filter((p) => p.includes('not listed'))).toEqual([]);
  });

  it('never mistakes a JavaScript built-in for a declared model', async () => {
    const f = base();
    f['registry/constructor/1/manifest.yaml'] = `name: constructor\nversion: "1"\nfiles:\n  - name: w.bin\n    sha256: ${sha('one')}\n    size: 3\n`;
    f['registry/constructor/1/w.bin'] = 'one';
    f['sites/alpha.yaml'] = 'models: [det, constructor, toString]\n';
    expect(await problems(f)).toEqual([
      'sites/alpha.yaml:1:15: models[1]: model "constructor" is not declared in registry/model_registry.yaml',
      'sites/alpha.yaml:1:28: models[2]: model "toString" is not declared in registry/model_registry.yaml',
    ]);
    // Declared under that name, it is an ordinary model, overrides included.
    f['registry/model_registry.yaml'] += '  constructor:\n    current_version: "1"\n';
    f['sites/alpha.yaml'] = 'models: [det, constructor]\noverrides: {det: "2025-01-01"}\n';
    expect(await problems(f)).toEqual([]);
  });

  it('turns hostile YAML into positioned problems and goes on with the other files', async () => {
    const f = base();
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x]', ...'bcdefg'.split('').map((n, i) => `${n}: &${n} [${Array(9).fill(`*${'abcdefg'[i]}`).join(',')}]`)].join('\n');
    f['sites/groups/g.yaml'] = `${bomb}\n`;
    f['sites/alpha.yaml'] = 'labels: !!js/function "function () {}"\n';
    f['registry/det/2025-01-01/manifest.yaml'] = `\uFEFFname: det\r\nversion: "2025-01-01"\r\nfiles:\r\n  - name: w.bin\r\n    sha256: ${sha('one')}\r\n    size: 4\r\n`;
    f['registry/det/2025-01-02/manifest.yaml'] = `name: det\nversion: "2025-01-02"\nfiles: ${'['.repeat(5000)}${']'.repeat(5000)}\n`;
    const got = await problems(f);
    expect(got).toEqual(expect.arrayContaining([
      'sites/groups/g.yaml:1:1: YAML: aliases expand too much (more than 100)',
      'sites/alpha.yaml:1:9: YAML: tag !!js/function is not allowed (plain YAML values only)',
      'registry/det/2025-01-01/manifest.yaml:6:11: files[0].size: is 4 but registry/det/2025-01-01/w.bin has 3 bytes',
    ]));
    expect(got.filter((p) => p.startsWith('registry/det/2025-01-02/manifest.yaml:3:'))).toHaveLength(1);
  });
});

describe('validate on oversized files', () => {
  it('refuses a huge file named manifest.yaml by its size, without reading it whole (a string that long would crash)', async () => {
    const f = base();
    const dir = tempDir();
    writeTree(dir, f);
    // 600 MiB (sparse) under the manifest's name: more than a JavaScript string can hold.
    const { openSync, ftruncateSync, closeSync, writeSync } = await import('node:fs');
    const fd = openSync(`${dir}/registry/det/2025-01-02/manifest.yaml`, 'w');
    writeSync(fd, '# ');
    ftruncateSync(fd, 600 << 20);
    closeSync(fd);
    const { problems } = await loadRegistry(new WorkTreeSource(dir));
    expect(problems.map(formatProblem)).toContain('registry/det/2025-01-02/manifest.yaml:1:1: file is larger than 1048576 bytes');
  });
});
