/**
 * publish, promote and rollback when things go wrong around them: bad
 * arguments caught before any hashing, a dirty working tree, two publishes
 * at once, a file still being written, Ctrl-C in the middle, a promotion
 * that arrived as a merge commit.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, ftruncateSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LockedError, UsageError } from '../../src/errors.ts';
import { acquireRepoLock } from '../../src/registry/git-repo.ts';
import { addToLfsCache } from '../../src/registry/lfs-cache.ts';
import { CLI, cli, cliAsync, git, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';

let env: NodeJS.ProcessEnv;
beforeAll(() => {
  env = { ...isolatedGitEnv(), MODELSYNC_NO_AUTOPUSH: '1' };
});

const head = (repo: string): string => git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout.trim();
const status = (repo: string): string => git(['status', '--porcelain'], { cwd: repo, env }).stdout;
const lfsFiles = (repo: string, sub: string): string[] =>
  existsSync(join(repo, '.git/lfs', sub)) ? (readdirSync(join(repo, '.git/lfs', sub), { recursive: true }) as string[]).filter((p) => /[0-9a-f]{64}$|\.tmp$/.test(p)) : [];

function ok(args: string[], cwd: string): string {
  const r = cli(args, { cwd, env });
  if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** An empty registry made by init, with det at 2025-01-01 published from a small file. */
function registry(): { repo: string; work: string } {
  const repo = join(tempDir(), 'reg');
  ok(['init', repo, '--bare-example'], tempDir());
  const work = tempDir();
  writeTree(work, { 'w.bin': 'weights one' });
  ok(['publish', 'det', '2025-01-01', join(work, 'w.bin')], repo);
  return { repo, work };
}

describe('publish refuses bad arguments before hashing anything (exit 2)', () => {
  it('a version outside the model\'s scheme, a file that is missing or a directory, a name twice', () => {
    const { repo, work } = registry();
    const before = head(repo);
    const objects = lfsFiles(repo, 'objects');
    writeTree(work, { 'big.bin': 'x'.repeat(1000), 'a/w.bin': '1', 'b/w.bin': '2', 'notes.yaml': 'a: 1\n', 'Manifest.YAML': 'x: 1\n' });
    const cases: Array<[string[], string]> = [
      [['det', 'v2', join(work, 'big.bin')], 'version "v2" does not follow the date scheme of det\'s published versions (YYYY-MM-DD with an optional .N suffix; published: 2025-01-01)'],
      [['det', '2025-13-01', join(work, 'big.bin')], 'version "2025-13-01" does not follow the date scheme of det\'s published versions'],
      [['newmodel', 'latest', join(work, 'big.bin')], 'version "latest" follows no version scheme: use a date (YYYY-MM-DD, optionally .N), an integer or a semantic version (1.2.3)'],
      [['det', '2025-02-01', join(work, 'nope.bin')], `${join(work, 'nope.bin')} does not exist`],
      [['det', '2025-02-01', join(work, 'a')], `${join(work, 'a')} is not a regular file (a directory: give the files in it)`],
      [['det', '2025-02-01', join(work, 'a/w.bin'), join(work, 'b/w.bin')], 'two files would be stored as "w.bin"'],
      [['det/x', '2025-02-01', join(work, 'big.bin')], 'invalid model name "det/x"'],
      [['det', '2025-02-01', join(work, 'Manifest.YAML')], 'a file may not be named manifest.yaml'],
      [['det', '2025-02-01', join(repo, 'registry/det/2025-01-01/w.bin')], `${join(repo, 'registry/det/2025-01-01/w.bin')} is a Git LFS pointer, not the file itself`],
      [['det', '2025-01-01', join(work, 'big.bin')], 'det 2025-01-01 already exists'],
    ];
    for (const [args, message] of cases) {
      const r = cli(['publish', ...args], { cwd: repo, env });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
    }
    // A declared version_scheme is the rule even before anything is published under it.
    const reg = join(repo, 'registry/model_registry.yaml');
    writeFileSync(reg, readFileSync(reg, 'utf8').replace('current_version: "2025-01-01"', 'current_version: "2025-01-01"\n    version_scheme: date'));
    git(['commit', '-qam', 'declare the scheme'], { cwd: repo, env });
    const declared = cli(['publish', 'det', '3', join(work, 'big.bin')], { cwd: repo, env });
    expect(declared.status).toBe(2);
    expect(declared.stderr).toContain('version "3" does not follow det\'s version_scheme date');
    git(['reset', '-q', '--hard', before], { cwd: repo, env });
    expect(head(repo)).toBe(before);
    expect(status(repo)).toBe('');
    expect(lfsFiles(repo, 'objects')).toEqual(objects);
    expect(lfsFiles(repo, 'tmp')).toEqual([]);
  });
});

describe('publish on a working tree that is not clean', () => {
  it('commits only its own files, leaves other staged and unstaged work as it was, refuses leftovers in its folder', () => {
    const { repo, work } = registry();
    const site = join(repo, 'sites/README.md');
    writeFileSync(site, `${readFileSync(site, 'utf8')}staged note\n`);
    git(['add', 'sites/README.md'], { cwd: repo, env });
    writeFileSync(join(repo, 'README.md'), 'unstaged edit\n');
    writeTree(work, { 'w.bin': 'weights two' });
    ok(['publish', 'det', '2025-02-01', join(work, 'w.bin')], repo);
    expect(git(['show', '--name-only', '--format=', 'HEAD'], { cwd: repo, env }).stdout.trim().split('\n').sort()).toEqual([
      'registry/det/2025-02-01/manifest.yaml',
      'registry/det/2025-02-01/w.bin',
      'registry/model_registry.yaml',
    ]);
    expect(status(repo).split('\n').filter(Boolean).sort()).toEqual([' M README.md', 'M  sites/README.md']);

    // A folder left behind (by hand, or by a tool that died) is not silently adopted.
    writeTree(repo, { 'registry/det/2025-03-01/w.bin': 'half' });
    const r = cli(['publish', 'det', '2025-03-01', join(work, 'w.bin')], { cwd: repo, env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('det 2025-03-01 already exists (registry/det/2025-03-01)');
  });
});

describe('publish stores each file as git add would', () => {
  it('follows .gitattributes for LFS and line ends, so git status stays clean and git lfs fsck passes', () => {
    const { repo, work } = registry();
    writeTree(work, { 'notes.yml': 'a: 1\n', 'NOTES2.YAML': 'b: 2\n', 'README.md': 'line one\r\nline two\r\n', 'notes.yaml': 'c: 3\r\n', 'w.bin': 'w' });
    const names = ['notes.yml', 'NOTES2.YAML', 'README.md', 'notes.yaml', 'w.bin'];
    const out = ok(['publish', 'det', '2025-02-01', ...names.map((n) => join(work, n))], repo);
    expect(status(repo)).toBe('');
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
    expect(git(['lfs', 'ls-files', '--name-only'], { cwd: repo, env }).stdout.trim().split('\n').filter((p) => p.includes('2025-02-01')).sort()).toEqual([
      'registry/det/2025-02-01/NOTES2.YAML', 'registry/det/2025-02-01/notes.yml', 'registry/det/2025-02-01/w.bin',
    ]);
    // Plain text is stored with the LF line ends git would give it, and the manifest describes those bytes.
    expect(git(['show', 'HEAD:registry/det/2025-02-01/README.md'], { cwd: repo, env }).stdout).toBe('line one\nline two\n');
    expect(out).toMatch(/README\.md {2}18 bytes .* \(plain blob\)/);
    expect(ok(['validate', '--rev', 'HEAD'], repo)).toContain('ok: commit');
  });
});

describe('publish --push when the push fails', () => {
  it('keeps the commit and says so, naming it', () => {
    const { repo, work } = registry();
    git(['remote', 'add', 'origin', 'http://127.0.0.1:9/registry.git'], { cwd: repo, env });
    writeTree(work, { 'w2.bin': 'two' });
    const r = cli(['publish', 'det', '2025-02-01', join(work, 'w2.bin'), '--push'], { cwd: repo, env });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`modelsync: published det 2025-02-01 in commit ${head(repo).slice(0, 12)}, but the push failed: `);
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('Publish det 2025-02-01');
    expect(status(repo)).toBe('');
  });
});

describe('two publishes at once', () => {
  it('both land, one after the other, and neither undoes the other\'s promotion', async () => {
    const { repo } = registry();
    const before = head(repo);
    const work = tempDir();
    // Big enough that the two hash at the same time.
    for (const name of ['a.bin', 'b.bin']) {
      const fd = openSync(join(work, name), 'w');
      ftruncateSync(fd, 48 << 20);
      closeSync(fd);
      appendFileSync(join(work, name), name);
    }
    const [a, b] = await Promise.all([
      cliAsync(['publish', 'det', '2025-02-01', join(work, 'a.bin')], { cwd: repo, env }),
      cliAsync(['publish', 'ssd', '1', join(work, 'b.bin')], { cwd: repo, env }),
    ]);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    const reg = readFileSync(join(repo, 'registry/model_registry.yaml'), 'utf8');
    expect(reg).toContain('  det:\n    current_version: "2025-02-01"\n    previous_version: "2025-01-01"\n');
    expect(reg).toContain('  ssd:\n    current_version: "1"\n');
    expect(git(['rev-list', '--count', `${before}..HEAD`], { cwd: repo, env }).stdout.trim()).toBe('2');
    expect(status(repo)).toBe('');
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
    // git's reflog shows both commits, as for commits made by git.
    expect(git(['reflog', '--format=%gs', '-2'], { cwd: repo, env }).stdout).toMatch(/^commit: Publish (det 2025-02-01|ssd 1)\ncommit: Publish (det 2025-02-01|ssd 1)\n$/);
  }, 120_000);

  it('waits for a git command holding the index lock, and refuses clearly if it never lets go', async () => {
    const { repo, work } = registry();
    const lock = join(repo, '.git/index.lock');
    writeFileSync(lock, '');
    writeTree(work, { 'w2.bin': 'two' });
    const pub = cliAsync(['publish', 'det', '2025-02-01', join(work, 'w2.bin')], { cwd: repo, env });
    await new Promise((r) => setTimeout(r, 3000));
    expect(existsSync(join(repo, 'registry/det/2025-02-01'))).toBe(false);
    rmSync(lock);
    const r = await pub;
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(lock)).toBe(false);
    writeFileSync(lock, '');
    const err = await acquireRepoLock({ dir: repo, gitdir: join(repo, '.git') }, 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect((err as Error).message).toContain(`another git or modelsync process is changing ${repo} (${lock} exists)`);
    rmSync(lock);
  }, 120_000);
});

describe('a file that changes while it is published', () => {
  it('is refused, and nothing partial is left in the LFS cache', async () => {
    const gitdir = join(tempDir(), '.git');
    const f = join(tempDir(), 'growing.bin');
    const fd = openSync(f, 'w');
    ftruncateSync(fd, 64 << 20);
    closeSync(fd);
    // A training job still writing its output.
    const writer = setInterval(() => appendFileSync(f, 'more'), 1);
    const err = await addToLfsCache(gitdir, f).catch((e: unknown) => e);
    clearInterval(writer);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(new RegExp(`^${f} changed while it was being read \\(\\d+ -> \\d+ bytes\\); publish it once it is complete$`));
    expect(readdirSync(join(gitdir, 'lfs/tmp'))).toEqual([]);
    expect(existsSync(join(gitdir, 'lfs/objects'))).toBe(false);
  });
});

describe('Ctrl-C in the middle of a publish', () => {
  it('stops hashing, commits nothing, leaves no file behind and exits 130', async () => {
    const { repo } = registry();
    const before = head(repo);
    const objects = lfsFiles(repo, 'objects');
    const big = join(tempDir(), 'big.bin');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, 2 * 1024 ** 3); // sparse: reading it costs time, not disk
    closeSync(fd);
    const child = spawn(process.execPath, [CLI, 'publish', 'det', '2025-02-01', big], { cwd: repo, env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // Interrupt once the copy into the LFS cache is under way.
    const tmp = join(repo, '.git/lfs/tmp');
    for (let i = 0; i < 600 && !(existsSync(tmp) && readdirSync(tmp).some((n) => n.startsWith('.publish.'))); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readdirSync(tmp).filter((n) => n.startsWith('.publish.')), stderr).toHaveLength(1);
    child.kill('SIGINT');
    const code = await exited;
    expect(code, stderr).toBe(130);
    expect(stderr).toContain('publish det 2025-02-01 was interrupted (SIGINT); nothing was committed and what it had written was removed [InterruptedError]');
    // Checked before running git, whose LFS filter keeps its own files in lfs/tmp.
    expect(readdirSync(tmp).filter((n) => n.startsWith('.publish.'))).toEqual([]);
    expect(lfsFiles(repo, 'objects')).toEqual(objects);
    expect(head(repo)).toBe(before);
    expect(status(repo)).toBe('');
    expect(existsSync(join(repo, 'registry/det/2025-02-01'))).toBe(false);
    expect(existsSync(join(repo, '.git/index.lock'))).toBe(false);
  }, 120_000);
});

describe('rollback after a merged pull request', () => {
  it('reverts the merge that promoted, keeping later edits of the same model', () => {
    const { repo, work } = registry();
    writeTree(work, { 'w.bin': 'weights two' });
    ok(['publish', 'det', '2025-02-01', join(work, 'w.bin'), '--no-promote'], repo);
    git(['switch', '-q', '-c', 'pr'], { cwd: repo, env });
    ok(['promote', 'det', '2025-02-01'], repo);
    git(['switch', '-q', 'main'], { cwd: repo, env });
    git(['merge', '-q', '--no-ff', 'pr', '-m', 'Merge pull request #7: det 2025-02-01'], { cwd: repo, env });
    const merge = head(repo);
    // Later, someone documents the model: rollback must keep that.
    const reg = join(repo, 'registry/model_registry.yaml');
    writeFileSync(reg, readFileSync(reg, 'utf8').replace('previous_version: "2025-01-01"', 'previous_version: "2025-01-01"\n    description: "face detector"'));
    git(['commit', '-qam', 'Describe det'], { cwd: repo, env });

    const out = ok(['rollback', 'det'], repo);
    expect(out).toContain('Rolled back det: 2025-02-01 -> 2025-01-01');
    expect(git(['log', '-1', '--format=%B'], { cwd: repo, env }).stdout).toBe(`Revert "Merge pull request #7: det 2025-02-01"\n\nThis reverts commit ${merge}.\n\n`);
    const after = readFileSync(reg, 'utf8');
    expect(after).toContain('  det:\n    current_version: "2025-01-01"\n    description: "face detector"\n');
    expect(after).not.toContain('previous_version');
    expect(status(repo)).toBe('');
    // Rolling back again undoes the rollback, as reverting a revert does.
    expect(ok(['rollback', 'det'], repo)).toContain('Rolled back det: 2025-01-01 -> 2025-02-01 (previous_version 2025-01-01)');
  });
});
