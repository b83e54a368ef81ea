/**
 * addBehaviour against the real `git check-attr`: for every path, modelsync
 * and git must agree on filter=lfs and on line-end normalisation, or
 * publish writes files git then sees as modified.
 */
import { describe, expect, it } from 'vitest';
import { REGISTRY_GITATTRIBUTES } from './init.ts';
import { addBehaviour, globToRegExp, normaliseForAdd } from './gitattributes.ts';
import { git, isolatedGitEnv, tempDir, writeTree } from '../../test/helpers/env.ts';

const paths = [
  'registry/m/1/w.bin', 'registry/m/1/notes.yaml', 'registry/m/1/NOTES.YAML', 'registry/m/1/notes.yml', 'registry/m/1/README.md',
  'registry/m/1/sub/dir/x.onnx', 'registry/model_registry.yaml', 'sites/a.yaml', 'templates/t.j2', 'top.bin', 'registry/m/1/data.csv',
  'registry/m/2/special.bin', 'registry/m/2/keep.txt', 'docs/a.psd', 'a/docs/b.psd',
];

function gitSays(dir: string, env: NodeJS.ProcessEnv): Map<string, { lfs: boolean; text: boolean | 'auto' }> {
  const out = git(['check-attr', 'filter', 'text', 'eol', '--', ...paths], { cwd: dir, env }).stdout;
  const by = new Map<string, Record<string, string>>();
  for (const line of out.trim().split('\n')) {
    const m = /^(.*): (\w+): (.*)$/.exec(line)!;
    by.set(m[1]!, { ...by.get(m[1]!), [m[2]!]: m[3]! });
  }
  return new Map([...by].map(([p, a]) => [p, {
    lfs: a.filter === 'lfs',
    text: a.text === 'auto' ? 'auto' : a.text === 'set' || (a.text === 'unspecified' && a.eol !== 'unspecified'),
  }]));
}

describe('.gitattributes as git reads them', () => {
  it.each([
    ['the attributes init writes', { '.gitattributes': REGISTRY_GITATTRIBUTES }],
    ['git lfs track of some patterns, nested files, unset and unspecified', {
      '.gitattributes': '*.bin filter=lfs diff=lfs merge=lfs -text\n/docs/*.psd filter=lfs\n*.csv text\n',
      'registry/.gitattributes': 'm/2/special.bin -filter\n**/keep.txt filter=lfs\n',
      'registry/m/1/.gitattributes': '*.onnx filter=lfs\n*.md eol=lf\n',
    }],
    ['text=auto, binary macro, ** in the middle', {
      '.gitattributes': '* text=auto\nregistry/**/*.bin binary filter=lfs\nregistry/**/sub/** filter=lfs\n',
    }],
  ])('agrees with git check-attr: %s', async (_what, files) => {
    const env = isolatedGitEnv();
    const dir = tempDir();
    git(['init', '-q'], { cwd: dir, env });
    writeTree(dir, files);
    const expected = gitSays(dir, env);
    for (const p of paths) expect(await addBehaviour(dir, p), p).toEqual(expected.get(p));
  });

  it('translates gitignore-style globs', () => {
    expect(globToRegExp('*.yaml').test('a/b/c.yaml')).toBe(true);
    expect(globToRegExp('/top.bin').test('a/top.bin')).toBe(false);
    expect(globToRegExp('a/**/b').test('a/b')).toBe(true);
    expect(globToRegExp('a/**/b').test('a/x/y/b')).toBe(true);
    expect(globToRegExp('file[0-9].[!t]*').test('file7.bin')).toBe(true);
    expect(globToRegExp('file[0-9].[!t]*').test('file7.txt')).toBe(false);
    expect(globToRegExp('a+b(c).txt').test('a+b(c).txt')).toBe(true);
  });

  it('normalises line ends of text as git add does, and leaves binary alone under text=auto', () => {
    expect(normaliseForAdd(Buffer.from('a\r\nb\r\n'), { lfs: false, text: true }).toString()).toBe('a\nb\n');
    expect(normaliseForAdd(Buffer.from('a\r\nb\r'), { lfs: false, text: 'auto' }).toString()).toBe('a\nb\r');
    expect(normaliseForAdd(Buffer.from('a\r\n\0'), { lfs: false, text: 'auto' }).toString()).toBe('a\r\n\0');
    expect(normaliseForAdd(Buffer.from('a\r\n'), { lfs: false, text: false }).toString()).toBe('a\r\n');
  });
});
