/**
 * Every registry command pointed at the wrong place says so, as a usage
 * error (exit 2) naming the directory: a missing path, a file, an empty
 * repository, a Git repository without a registry, a bare repository, a
 * detached HEAD, a linked worktree. Nothing is ever read as an "empty
 * registry".
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/commands/context.ts';
import { hooksInstallCommand } from '../../src/commands/hooks.ts';
import { listCommand, versionsCommand } from '../../src/commands/list.ts';
import { promoteCommand } from '../../src/commands/promote.ts';
import { publishCommand } from '../../src/commands/publish.ts';
import { rollbackCommand } from '../../src/commands/rollback.ts';
import { validateCommand } from '../../src/commands/validate.ts';
import { UsageError } from '../../src/errors.ts';
import { silentLogger } from '../../src/log.ts';
import { CLI, cli, git, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';

let env: NodeJS.ProcessEnv;
let root: string;
let weights: string;
beforeAll(() => {
  env = isolatedGitEnv();
  root = tempDir();
  weights = join(root, 'w.bin');
  writeFileSync(weights, 'weights');
});

function ctx(cwd: string, out: string[] = []): CommandContext {
  return { cwd, env, out: (t) => out.push(t), logger: silentLogger, tty: false };
}

type Run = (repo: string | undefined, cwd: string) => Promise<number>;
const commands: Record<string, Run> = {
  validate: (repo, cwd) => validateCommand({ repo }, ctx(cwd)),
  'validate --rev HEAD': (repo, cwd) => validateCommand({ repo, rev: 'HEAD' }, ctx(cwd)),
  'validate --staged': (repo, cwd) => validateCommand({ repo, staged: true }, ctx(cwd)),
  list: (repo, cwd) => listCommand({ repo }, ctx(cwd)),
  versions: (repo, cwd) => versionsCommand({ repo, model: 'det' }, ctx(cwd)),
  publish: (repo, cwd) => publishCommand({ repo, model: 'det', version: '2', files: [weights] }, ctx(cwd)),
  promote: (repo, cwd) => promoteCommand({ repo, model: 'det', version: '1' }, ctx(cwd)),
  rollback: (repo, cwd) => rollbackCommand({ repo, model: 'det' }, ctx(cwd)),
  'hooks install': (repo, cwd) => hooksInstallCommand({ repo }, ctx(cwd)),
};

async function usage(run: Promise<number>): Promise<string> {
  try {
    await run;
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}

/** A registry committed with stock git: one model, version 1 current. */
function registry(dir: string): string {
  mkdirSync(dir, { recursive: true });
  git(['init', '-q', '-b', 'main'], { cwd: dir, env });
  writeTree(dir, {
    'registry/model_registry.yaml': 'models:\n  det:\n    current_version: "1"\n',
    'registry/det/1/manifest.yaml': 'name: det\nversion: "1"\nfiles:\n  - name: w.txt\n    sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n    size: 5\n',
    'registry/det/1/w.txt': 'hello',
    'sites/alpha.yaml': 'labels: {role: primary}\n',
  });
  git(['add', '.'], { cwd: dir, env });
  git(['commit', '-qm', 'registry'], { cwd: dir, env });
  return dir;
}

describe('registry commands pointed at the wrong place', () => {
  it.each(Object.keys(commands))('%s: a missing directory, a file, an empty or unrelated repository are usage errors naming it', async (name) => {
    const run = commands[name]!;
    const missing = join(root, 'does/not/exist');
    expect(await usage(run(missing, root))).toBe(`--repo ${missing} does not exist`);
    expect(await usage(run(weights, root))).toBe(`--repo ${weights} is not a directory`);

    const plain = tempDir();
    expect(await usage(run(plain, root))).toMatch(new RegExp(`^${plain} (is not a modelsync registry|is not a Git repository)`));

    const empty = tempDir();
    git(['init', '-q', '-b', 'main'], { cwd: empty, env });
    expect(await usage(run(empty, root))).toMatch(/is not a modelsync registry|has no commits|has no modelsync hooks/);

    const unrelated = tempDir();
    git(['init', '-q', '-b', 'main'], { cwd: unrelated, env });
    writeFileSync(join(unrelated, 'README'), 'not a registry\n');
    git(['add', '.'], { cwd: unrelated, env });
    git(['commit', '-qm', 'x'], { cwd: unrelated, env });
    expect(await usage(run(unrelated, root))).toMatch(new RegExp(`^${unrelated}(/hooks/pre-commit does not exist: .*)? (is not a modelsync registry|has no modelsync hooks)`));

    const bare = tempDir();
    git(['init', '-q', '--bare', '-b', 'main'], { cwd: bare, env });
    expect(await usage(run(bare, root))).toMatch(/bare repository|has no commits yet/);
  });

  it('the CLI exits 2 with the message on stderr', () => {
    const missing = join(root, 'nope');
    for (const args of [['list'], ['validate', '--json'], ['publish', 'det', '2', weights], ['hooks', 'install']]) {
      const r = cli([...args, '--repo', missing], { cwd: root, env });
      expect(r.status, args.join(' ')).toBe(2);
      if (args.includes('--json')) expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, error: { code: 'UsageError', message: `--repo ${missing} does not exist` } });
      else expect(r.stderr).toBe(`modelsync: --repo ${missing} does not exist [UsageError]\n`);
      expect(r.stdout.includes('MODEL')).toBe(false);
    }
  });

  it('a bare repository is read at HEAD; an unborn HEAD names the branches there are', async () => {
    const work = registry(join(tempDir(), 'work'));
    const bare = join(tempDir(), 'hub.git');
    git(['clone', '-q', '--bare', work, bare], { cwd: root, env });
    const out: string[] = [];
    expect(await listCommand({ repo: bare }, ctx(root, out))).toBe(0);
    expect(out[0]).toMatch(/^MODEL +CURRENT +PREVIOUS +VERSIONS$/);
    expect(out[1]).toMatch(/^det +1 +- +1$/);
    expect(await validateCommand({ repo: bare }, ctx(root, out))).toBe(0);
    expect(out.at(-1)).toMatch(/^ok: commit [0-9a-f]{12} — 1 model, 1 version, 1 site$/);
    git(['symbolic-ref', 'HEAD', 'refs/heads/master'], { cwd: bare, env });
    expect(await usage(listCommand({ repo: bare }, ctx(root)))).toContain('HEAD names a branch with no commits; give --rev <branch> (branches: main)');
    expect(await validateCommand({ repo: bare, rev: 'main' }, ctx(root))).toBe(0);
  });

  it('a detached HEAD can be read but not committed to', async () => {
    const repo = registry(join(tempDir(), 'reg'));
    git(['checkout', '-q', '--detach'], { cwd: repo, env });
    expect(await validateCommand({ repo }, ctx(root))).toBe(0);
    expect(await listCommand({ repo }, ctx(root))).toBe(0);
    for (const name of ['publish', 'promote', 'rollback']) {
      expect(await usage(commands[name]!(repo, root))).toContain('HEAD is detached; check out the branch to commit to');
    }
  });

  it('a linked worktree is read as its own checkout (its HEAD, its index) and refused for commits', async () => {
    const repo = registry(join(tempDir(), 'reg'));
    const wt = join(tempDir(), 'wt');
    git(['worktree', 'add', '-q', wt, '-b', 'other'], { cwd: repo, env });
    // The worktree's branch and index differ from the main checkout's: a second model, committed there only.
    writeTree(wt, {
      'registry/model_registry.yaml': 'models:\n  det:\n    current_version: "1"\n  ssd:\n    current_version: "1"\n',
      'registry/ssd/1/manifest.yaml': 'name: ssd\nversion: "1"\nfiles:\n  - name: w.txt\n    sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n    size: 5\n',
      'registry/ssd/1/w.txt': 'hello',
    });
    git(['add', '.'], { cwd: wt, env });
    git(['commit', '-qm', 'ssd', '--no-verify'], { cwd: wt, env });
    const out: string[] = [];
    for (const opts of [{}, { rev: 'HEAD' }, { staged: true }]) {
      expect(await validateCommand({ repo: wt, ...opts }, ctx(root, out))).toBe(0);
      expect(out.at(-1)).toContain('2 models, 2 versions, 1 site');
    }
    expect(await validateCommand({ repo, rev: 'HEAD' }, ctx(root, out))).toBe(0);
    expect(out.at(-1)).toContain('1 model, 1 version, 1 site');
    for (const name of ['publish', 'promote', 'rollback']) {
      expect(await usage(commands[name]!(wt, root))).toContain('is a linked worktree (git worktree), where modelsync cannot commit');
    }
  });

  it('without --repo, a command run inside a checkout works on the checkout it is in', async () => {
    const repo = registry(join(tempDir(), 'reg'));
    const out: string[] = [];
    expect(await validateCommand({}, ctx(join(repo, 'registry/det'), out))).toBe(0);
    expect(out.at(-1)).toContain('ok: working tree — 1 model, 1 version, 1 site');
    expect(await usage(validateCommand({}, ctx(tempDir())))).toContain('is not a modelsync registry');
  });

  it('a reader that goes away early (modelsync list | head -1) gets no stack trace', async () => {
    const repo = registry(join(tempDir(), 'reg'));
    const child = spawn(process.execPath, [CLI, 'list', '--repo', repo], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // closed before the CLI writes a byte
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
