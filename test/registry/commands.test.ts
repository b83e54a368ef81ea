/**
 * init, publish, promote, rollback, list and versions through the real CLI,
 * checked with the stock git and git-lfs clients.
 */
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { formatPointer } from '../../src/registry/lfs-pointer.ts';
import { cli, git, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';

const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

let env: NodeJS.ProcessEnv;
beforeAll(() => {
  env = isolatedGitEnv();
});

function ms(args: string[], cwd: string): { status: number; stdout: string; stderr: string } {
  return cli(args, { cwd, env });
}

function ok(args: string[], cwd: string): string {
  const r = ms(args, cwd);
  if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function head(repo: string): string {
  return git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout.trim();
}

function newRegistry(bare = true): string {
  const dir = join(tempDir(), 'reg');
  ok(['init', dir, ...(bare ? ['--bare-example'] : [])], tempDir());
  return dir;
}

describe('init', () => {
  it('creates a registry from the example that stock git-lfs agrees with', () => {
    const repo = newRegistry(false);
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
    const lfsFiles = git(['lfs', 'ls-files', '--name-only'], { cwd: repo, env }).stdout.trim().split('\n');
    expect(lfsFiles).toContain('registry/face_recognition/2025-12-08/facemodel.pickle');
    expect(lfsFiles).toContain('registry/coral_packages/2025-08-14/libedgetpu1-std_16.0_arm64.deb');
    expect(lfsFiles.some((f) => f.endsWith('.yaml'))).toBe(false);
    // The committed blob is the canonical pointer, byte for byte.
    const example = readFileSync(join(__dirname, '../../registry/face_recognition/2025-12-08/facemodel.pickle'));
    const shown = git(['show', 'HEAD:registry/face_recognition/2025-12-08/facemodel.pickle'], { cwd: repo, env }).stdout;
    expect(shown).toBe(formatPointer({ oid: sha(example), size: example.length }));
    // ...and the object is in git-lfs's cache, so `git lfs checkout` can smudge it.
    const oid = sha(example);
    expect(readFileSync(join(repo, '.git/lfs/objects', oid.slice(0, 2), oid.slice(2, 4), oid)).equals(example)).toBe(true);
    git(['lfs', 'checkout'], { cwd: repo, env });
    expect(readFileSync(join(repo, 'registry/face_recognition/2025-12-08/facemodel.pickle')).equals(example)).toBe(true);
    expect(ok(['validate'], repo)).toContain('ok: working tree — 6 models, 7 versions, 3 sites');
    expect(ok(['validate', '--rev', 'HEAD'], repo)).toContain('6 models, 7 versions, 3 sites');
    expect(git(['config', 'core.hooksPath'], { cwd: repo, env }).stdout.trim()).toBe('hooks');
    expect(statSync(join(repo, 'hooks/pre-commit')).mode & 0o111).not.toBe(0);
    expect(git(['ls-files', '-s', 'hooks/pre-push'], { cwd: repo, env }).stdout).toMatch(/^100755 /);
  });

  it('refuses to clobber an existing registry', () => {
    const repo = newRegistry();
    const before = head(repo);
    const r = ms(['init', repo], repo);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`modelsync: ${repo} is already a modelsync registry; nothing was changed [UsageError]\n`);
    expect(head(repo)).toBe(before);
    // Not a registry, but init would overwrite part of it: the sentence names the part.
    const other = tempDir();
    mkdirSync(join(other, 'sites'));
    const r2 = ms(['init', other], other);
    expect(r2.status).toBe(2);
    expect(r2.stderr).toBe(`modelsync: ${other} already has a sites/ that init would overwrite; nothing was changed [UsageError]\n`);
    expect(existsSync(join(other, '.git'))).toBe(false);
  });

  it('keeps executable bits tracked, as git init does on a file system that has them', () => {
    const repo = newRegistry();
    expect(git(['config', 'core.filemode'], { cwd: repo, env }).stdout.trim()).toBe('true');
    // A hook made non-executable by mistake shows up as a change, as it would in a repo made by git init.
    chmodSync(join(repo, 'hooks/pre-push'), 0o644);
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe(' M hooks/pre-push\n');
  });
});

describe('publish', () => {
  it('stores an empty file as git-lfs does (an empty blob, not a size-0 pointer), so git lfs fsck passes', () => {
    const repo = newRegistry();
    const work = tempDir();
    writeTree(work, { 'empty.flag': '', 'w.bin': 'weights' });
    ok(['publish', 'm', '1', join(work, 'empty.flag'), join(work, 'w.bin')], repo);
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
    expect(git(['cat-file', '-s', 'HEAD:registry/m/1/empty.flag'], { cwd: repo, env }).stdout.trim()).toBe('0');
    expect(ok(['validate'], repo)).toContain('ok: working tree');
  });

  it('stores pointers and LFS objects, writes the manifest, promotes and commits', () => {
    const repo = newRegistry();
    const work = tempDir();
    writeTree(work, { 'facemodel.pickle': 'model v1', 'facelist.csv': 'id,name\n1,ana\n', 'notes.yaml': 'kept: plain\n' });
    const out = ok(['publish', 'face_recognition', '2025-11-20', join(work, 'facemodel.pickle'), join(work, 'facelist.csv'), join(work, 'notes.yaml'), '--framework', 'dlib'], repo);
    expect(out).toContain('Published face_recognition 2025-11-20 (3 files)');
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('Publish face_recognition 2025-11-20');
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
    expect(git(['lfs', 'ls-files', '--name-only'], { cwd: repo, env }).stdout.trim().split('\n').sort()).toEqual([
      'registry/face_recognition/2025-11-20/facelist.csv',
      'registry/face_recognition/2025-11-20/facemodel.pickle',
    ]);
    // A small YAML file stays a plain blob, as .gitattributes says.
    expect(git(['show', 'HEAD:registry/face_recognition/2025-11-20/notes.yaml'], { cwd: repo, env }).stdout).toBe('kept: plain\n');
    const manifest = readFileSync(join(repo, 'registry/face_recognition/2025-11-20/manifest.yaml'), 'utf8');
    expect(manifest).toContain(`  - name: facemodel.pickle\n    sha256: ${sha('model v1')}\n    size: 8\n`);
    expect(manifest).toContain('framework: "dlib"');
    expect(readFileSync(join(repo, 'registry/model_registry.yaml'), 'utf8')).toContain('  face_recognition:\n    current_version: "2025-11-20"\n');

    writeFileSync(join(work, 'facemodel.pickle'), 'model v2');
    ok(['publish', 'face_recognition', '2025-12-08', join(work, 'facemodel.pickle'), join(work, 'facelist.csv')], repo);
    const reg = readFileSync(join(repo, 'registry/model_registry.yaml'), 'utf8');
    expect(reg).toContain('current_version: "2025-12-08"\n    previous_version: "2025-11-20"');
    expect(readFileSync(join(repo, 'registry/face_recognition/2025-12-08/manifest.yaml'), 'utf8')).toContain('previous_version: "2025-11-20"');
    expect(ok(['versions', 'face_recognition'], repo)).toMatch(/2025-11-20 .* previous\n2025-12-08 .*\* current/);
  });

  it('refuses to overwrite a published version (versions are immutable)', () => {
    const repo = newRegistry();
    const f = join(tempDir(), 'w.bin');
    writeFileSync(f, 'weights');
    ok(['publish', 'det', '1', f], repo);
    const before = head(repo);
    writeFileSync(f, 'other weights');
    const r = ms(['publish', 'det', '1', f], repo);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('det 1 already exists');
    expect(head(repo)).toBe(before);
  });

  it('commits nothing and leaves nothing behind when the result would be invalid', () => {
    const repo = newRegistry();
    const f = join(tempDir(), 'w.bin');
    writeFileSync(f, 'weights');
    ok(['publish', 'det', '2025-01-01', f], repo);
    const lfsObjects = (): string[] => (readdirSync(join(repo, '.git/lfs/objects'), { recursive: true }) as string[]).filter((p) => /[0-9a-f]{64}$/.test(p));
    const lfsBefore = lfsObjects();
    writeFileSync(f, 'a different model');
    // A site file committed past the hooks names a model nobody declared: the new tree would be invalid.
    writeTree(repo, { 'sites/alpha.yaml': 'models: [nope]\n' });
    git(['add', 'sites/alpha.yaml'], { cwd: repo, env });
    git(['commit', '-q', '--no-verify', '-m', 'broken site'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    const broken = head(repo);
    const r = ms(['publish', 'det', '2025-02-01', f], repo);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('refusing to publish det 2025-02-01: the registry would be invalid');
    expect(r.stderr).toContain('sites/alpha.yaml:1:10: models[0]: model "nope" is not declared');
    expect(head(repo)).toBe(broken);
    expect(existsSync(join(repo, 'registry/det/2025-02-01'))).toBe(false);
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(lfsObjects()).toEqual(lfsBefore);
    expect(readdirSync(join(repo, '.git/lfs/objects'), { recursive: true }).length).toBe(3);
  });

  it('rejects bad names and missing files before touching anything', () => {
    const repo = newRegistry();
    const before = head(repo);
    expect(ms(['publish', '../evil', '1', 'x'], repo).stderr).toContain('invalid model name');
    expect(ms(['publish', 'det', 'current', 'x'], repo).stderr).toContain('reserved');
    expect(ms(['publish', 'det', '1', join(repo, 'nope.bin')], repo).stderr).toContain('does not exist');
    const d = tempDir();
    writeTree(d, { 'a/w.bin': 'x', 'b/w.bin': 'y' });
    expect(ms(['publish', 'det', '1', join(d, 'a/w.bin'), join(d, 'b/w.bin')], repo).stderr).toContain('two files would be stored as "w.bin"');
    expect(head(repo)).toBe(before);
  });
});

describe('promote and rollback', () => {
  function threeVersions(): { repo: string; commits: Record<string, string> } {
    const repo = newRegistry();
    const f = join(tempDir(), 'w.bin');
    const commits: Record<string, string> = {};
    for (const v of ['2025-01-01', '2025-02-01', '2025-03-01']) {
      writeFileSync(f, `weights ${v}`);
      ok(['publish', 'det', v, f], repo);
      commits[v] = head(repo);
    }
    writeFileSync(f, 'ssd');
    ok(['publish', 'ssd', '1', f], repo);
    return { repo, commits };
  }

  it('promote sets previous_version to the old current and keeps comments and layout', () => {
    const { repo } = threeVersions();
    const before = readFileSync(join(repo, 'registry/model_registry.yaml'), 'utf8');
    expect(before).toContain('# What every site runs');
    ok(['promote', 'det', '2025-01-01'], repo);
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('Promote det 2025-01-01');
    const diff = git(['diff', 'HEAD^', 'HEAD', '--unified=0', '--', 'registry/model_registry.yaml'], { cwd: repo, env }).stdout;
    const changed = diff.split('\n').filter((l) => /^[-+] /.test(l));
    expect(changed).toEqual([
      '-    current_version: "2025-03-01"',
      '-    previous_version: "2025-02-01"',
      '+    current_version: "2025-01-01"',
      '+    previous_version: "2025-03-01"',
    ]);
    // Promoting the current version again changes nothing: exit 0, one line, no commit.
    const tip = head(repo);
    const again = ms(['promote', 'det', '2025-01-01'], repo);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toBe('det 2025-01-01 is already current; nothing to commit\n');
    expect(JSON.parse(ok(['promote', 'det', '2025-01-01', '--json'], repo))).toMatchObject({ ok: true, unchanged: true, commit: tip });
    // rollback --to the current version is the same no-op.
    expect(ok(['rollback', 'det', '--to', '2025-01-01'], repo)).toBe('det 2025-01-01 is already current; nothing to commit\n');
    expect(head(repo)).toBe(tip);
    expect(ms(['promote', 'det', '2030-01-01'], repo).stderr).toContain('not published (published: 2025-01-01, 2025-02-01, 2025-03-01)');
  });

  it('rollback reverts the last promotion of the model, restoring previous_version, leaving other models alone', () => {
    const { repo, commits } = threeVersions();
    // Another model changes after det's last promotion; rollback must not undo it.
    const f = join(tempDir(), 'w.bin');
    writeFileSync(f, 'ssd 2');
    ok(['publish', 'ssd', '2', f], repo);
    const out = ok(['rollback', 'det'], repo);
    expect(out).toContain('Rolled back det: 2025-03-01 -> 2025-02-01 (previous_version 2025-01-01)');
    const msg = git(['log', '-1', '--format=%B'], { cwd: repo, env }).stdout;
    expect(msg).toBe(`Revert "Publish det 2025-03-01"\n\nThis reverts commit ${commits['2025-03-01']}.\n\n`);
    const reg = readFileSync(join(repo, 'registry/model_registry.yaml'), 'utf8');
    expect(reg).toContain('  det:\n    current_version: "2025-02-01"\n    previous_version: "2025-01-01"\n');
    expect(reg).toContain('  ssd:\n    current_version: "2"\n    previous_version: "1"\n');
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(ok(['validate', '--rev', 'HEAD'], repo)).toContain('ok');
  });

  it('rollback --to promotes the given version', () => {
    const { repo } = threeVersions();
    const out = ok(['rollback', 'det', '--to', '2025-01-01'], repo);
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('Roll back det to 2025-01-01');
    // No hook pushes a modelsync commit: in an incident, "rolled back" must not read as "live".
    expect(out).toContain('Not pushed: sites keep what they run until you push (git push, or --push next time).');
    expect(readFileSync(join(repo, 'registry/model_registry.yaml'), 'utf8')).toContain('current_version: "2025-01-01"\n    previous_version: "2025-03-01"');
  });

  it('rollback says clearly when there is nothing to roll back', () => {
    const { repo } = threeVersions();
    const before = head(repo);
    const r = ms(['rollback', 'ssd'], repo);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/nothing to roll back: ssd was introduced by commit [0-9a-f]{12} \("Publish ssd 1"\)/);
    expect(ms(['rollback', 'nope'], repo).stderr).toContain('model "nope" is not declared');
    expect(head(repo)).toBe(before);
  });

  it('refuses to fold uncommitted edits of model_registry.yaml into its commit', () => {
    const { repo } = threeVersions();
    const before = head(repo);
    const path = join(repo, 'registry/model_registry.yaml');
    writeFileSync(path, `${readFileSync(path, 'utf8')}# a local note\n`);
    const r = ms(['promote', 'det', '2025-01-01'], repo);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('uncommitted changes in registry/model_registry.yaml');
    expect(head(repo)).toBe(before);
    expect(readFileSync(path, 'utf8')).toContain('# a local note');
  });

  it('list and versions print what the registry declares, also as JSON', () => {
    const { repo } = threeVersions();
    const list = JSON.parse(ok(['list', '--json'], repo)) as { models: Array<{ name: string; current: string; previous: string | null; versions: number }> };
    expect(list.models.map((m) => [m.name, m.current, m.previous, m.versions])).toEqual([
      ['det', '2025-03-01', '2025-02-01', 3],
      ['ssd', '1', null, 1],
    ]);
    const versions = JSON.parse(ok(['versions', 'det', '--json'], repo)) as { versions: Array<{ version: string; current: boolean; previous: boolean }> };
    expect(versions.versions.map((v) => [v.version, v.current, v.previous])).toEqual([
      ['2025-01-01', false, false],
      ['2025-02-01', false, true],
      ['2025-03-01', true, false],
    ]);
  });
});

describe('interop with a registry written by stock git + git-lfs', () => {
  it('validates at HEAD (pointers) and in the smudged working tree (content)', () => {
    const repo = tempDir();
    git(['init', '-q', '-b', 'main'], { cwd: repo, env });
    git(['lfs', 'track', 'registry/**'], { cwd: repo, env });
    const attrs = readFileSync(join(repo, '.gitattributes'), 'utf8');
    writeFileSync(join(repo, '.gitattributes'), `${attrs}registry/**/*.yaml !filter !diff !merge text\n`);
    const weights = Buffer.alloc(5000, 7);
    writeTree(repo, {
      'registry/model_registry.yaml': 'models:\n  det:\n    current_version: "2025-01-01"\n',
      'registry/det/2025-01-01/manifest.yaml': `name: det\nversion: "2025-01-01"\nfiles:\n  - name: nets/w.bin\n    sha256: ${sha(weights)}\n    size: ${weights.length}\n`,
      'registry/det/2025-01-01/nets/w.bin': weights,
      'sites/alpha.yaml': 'labels: {role: primary}\n',
    });
    git(['add', '.'], { cwd: repo, env });
    git(['commit', '-qm', 'hand-made registry'], { cwd: repo, env });
    expect(git(['show', 'HEAD:registry/det/2025-01-01/nets/w.bin'], { cwd: repo, env }).stdout).toBe(formatPointer({ oid: sha(weights), size: weights.length }));
    expect(ok(['validate', '--rev', 'HEAD'], repo)).toContain('ok: commit');
    expect(ok(['validate'], repo)).toContain('ok: working tree — 1 model, 1 version, 1 site');
    expect(ok(['validate', '--staged'], repo)).toContain('ok: index');
    // A wrong hash in a hand-written manifest is caught against the pointer, too.
    const m = join(repo, 'registry/det/2025-01-01/manifest.yaml');
    writeFileSync(m, readFileSync(m, 'utf8').replace(sha(weights), sha('other')));
    git(['commit', '-qam', 'bad hash'], { cwd: repo, env });
    const r = ms(['validate', '--rev', 'HEAD'], repo);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('registry/det/2025-01-01/manifest.yaml:5:13: files[0].sha256: does not match the LFS pointer');
    // ...and publish works on top of a registry made this way.
    git(['revert', '--no-edit', 'HEAD'], { cwd: repo, env });
    const f = join(tempDir(), 'w2.bin');
    writeFileSync(f, 'v2');
    ok(['publish', 'det', '2025-02-01', f], repo);
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
  });
});
