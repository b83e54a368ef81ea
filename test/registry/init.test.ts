/**
 * init's arguments and its failures: a bad branch name or a target that is a
 * file is refused before anything is created; a failure or Ctrl-C half way
 * removes what init created, like a failed clone, and keeps what was there.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { branchNameProblem, initRegistry } from '../../src/registry/init.ts';
import { CLI, ROOT, isolatedGitEnv, tempDir } from '../helpers/env.ts';

let env: NodeJS.ProcessEnv;
beforeAll(() => {
  env = isolatedGitEnv();
});

async function refused(p: Promise<unknown>): Promise<string> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(UsageError);
  return (err as Error).message;
}

/** A copy of this project's example whose face_recognition 2025-12-08 manifest lies about a hash. */
function brokenExample(): string {
  const src = tempDir();
  for (const d of ['registry', 'sites', 'templates', 'hooks', 'schemas', 'bin']) cpSync(join(ROOT, d), join(src, d), { recursive: true });
  const m = join(src, 'registry/face_recognition/2025-12-08/manifest.yaml');
  writeFileSync(m, readFileSync(m, 'utf8').replace(/sha256: [0-9a-f]{64}/, `sha256: ${'f'.repeat(64)}`));
  return src;
}

describe('init', () => {
  it.each([
    ['', 'it is empty'],
    ['bad..name', 'it may not contain ".."'],
    ['-x', 'it may not start with "-"'],
    ['a b', 'it may not contain spaces'],
    ['feature/x.lock', 'no part of it may end with ".lock"'],
    ['/main', 'it may not start or end with "/"'],
    ['main.', 'it may not end with "."'],
    ['@', 'it may not be "@"'],
  ])('refuses --branch %j before creating anything', async (branch, why) => {
    expect(branchNameProblem(branch)).toContain(why);
    const dir = join(tempDir(), 'reg');
    expect(await refused(initRegistry({ dir, branch, example: false, env }))).toContain(`invalid --branch ${JSON.stringify(branch)}: ${why}`);
    expect(existsSync(dir)).toBe(false);
  });

  it('accepts branch names git accepts', () => {
    for (const b of ['main', 'release/2025-12', 'team.a/feature_1']) expect(branchNameProblem(b)).toBeNull();
  });

  it('refuses a target that is a file, or lies under one', async () => {
    const file = join(tempDir(), 'f');
    writeFileSync(file, 'x');
    expect(await refused(initRegistry({ dir: file, branch: 'main', example: false, env }))).toBe(`${file} is not a directory; cannot create a registry in ${file}`);
    expect(await refused(initRegistry({ dir: join(file, 'sub'), branch: 'main', example: false, env }))).toContain(`${file} is not a directory`);
  });

  it('removes the directory it created when it fails half way', async () => {
    const dir = join(tempDir(), 'new/reg');
    const err = await initRegistry({ dir, branch: 'main', example: true, env, sourceRoot: brokenExample() }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/hashes to [0-9a-f]{64}, expected f{64}/);
    expect(existsSync(join(dir, '..'))).toBe(false);
  });

  it('in an existing directory, removes only what it added and restores .gitattributes', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'keep.txt'), 'mine\n');
    writeFileSync(join(dir, '.gitattributes'), '*.psd binary\n');
    await initRegistry({ dir, branch: 'main', example: true, env, sourceRoot: brokenExample() }).catch(() => {});
    expect(readdirSync(dir).sort()).toEqual(['.gitattributes', 'keep.txt']);
    expect(readFileSync(join(dir, '.gitattributes'), 'utf8')).toBe('*.psd binary\n');
  });

  it('Ctrl-C half way exits 130 and leaves no partial registry', async () => {
    const dir = join(tempDir(), 'reg');
    const child = spawn(process.execPath, [CLI, 'init', dir], { env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    // Once the repository exists, init still has the example to publish.
    for (let i = 0; i < 400 && !existsSync(join(dir, '.git/HEAD')); i++) await new Promise((r) => setTimeout(r, 25));
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(130);
    expect(stderr).toContain(`modelsync: init ${dir} was interrupted (SIGINT)`);
    expect(existsSync(dir)).toBe(false);
  }, 60_000);
});
