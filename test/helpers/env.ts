/**
 * Shared helpers for tests that use real directories, the real `git` and
 * `git lfs` clients and the real CLI. Each test gets an isolated HOME and
 * global git config, so nothing depends on (or changes) the machine's setup.
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(ROOT, 'bin/modelsync.js');

const made: string[] = [];
afterAll(() => {
  if (process.env.MODELSYNC_KEEP_TMP) return;
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary directory, removed after the test file. */
export function tempDir(prefix = 'modelsync-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

/** An environment with its own HOME and global git config, with git-lfs's filters installed. */
export function isolatedGitEnv(): NodeJS.ProcessEnv {
  const home = tempDir('modelsync-home-');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    GIT_CONFIG_GLOBAL: join(home, '.gitconfig'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Test Author',
    GIT_AUTHOR_EMAIL: 'author@example.test',
    GIT_COMMITTER_NAME: 'Test Author',
    GIT_COMMITTER_EMAIL: 'author@example.test',
    GIT_TERMINAL_PROMPT: '0',
    LANG: 'C',
    MODELSYNC_LOG_LEVEL: process.env.MODELSYNC_LOG_LEVEL ?? 'warn',
  };
  writeFileSync(
    join(home, '.gitconfig'),
    '[user]\n\tname = Test Author\n\temail = author@example.test\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n',
  );
  mkdirSync(join(home, '.config'), { recursive: true });
  const r = spawnSync('git', ['lfs', 'install', '--skip-repo'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git lfs install failed: ${r.stderr}`);
  return env;
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

function result(r: SpawnSyncReturns<string>): RunResult {
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Run the real git; throws with stderr when it fails unless `allowFail`. */
export function git(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; allowFail?: boolean; input?: string }): RunResult {
  const r = result(spawnSync('git', args, { cwd: opts.cwd, env: opts.env, encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20 }));
  if (r.status !== 0 && !opts.allowFail) throw new Error(`git ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r;
}

/** Run the modelsync CLI as a user would (`npx modelsync …`). */
export function cli(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string }): RunResult {
  return result(spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: opts.env, encoding: 'utf8', input: opts.input, maxBuffer: 64 << 20 }));
}

/** Run the CLI without blocking the event loop (needed when the test also runs a server in-process). */
export function cliAsync(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: opts.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ status: code ?? -1, stdout, stderr }));
  });
}

/** Same as `git` but async, for tests that run a hub in-process. */
export function gitAsync(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; allowFail?: boolean }): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('git', args, { cwd: opts.cwd, env: opts.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const r = { status: code ?? -1, stdout, stderr };
      if (r.status !== 0 && !opts.allowFail) reject(new Error(`git ${args.join(' ')} failed (${r.status}):\n${stderr}${stdout}`));
      else resolvePromise(r);
    });
  });
}

/** Write a tree of files: `{ 'a/b.yaml': 'text' }`. */
export function writeTree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const full = join(root, rel);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, content);
  }
}
