/**
 * The bundled CLI's code cache (bin/run-bundle.js): the first run of a
 * command writes V8's compiled code for it, later runs use it, and a cache
 * that is damaged or belongs to another build never changes what the
 * command does: it is recompiled and written again. Built into a temporary
 * directory, so dist/ (which the rest of the suite runs) is left alone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/env.ts';

let dist: string;
let runner: string;

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [runner, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const caches = (dir = join(dist, '.code-cache')): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);

beforeAll(() => {
  const root = tempDir('code-cache-');
  // The bundle finds its project by walking up to a package.json named modelsync.
  writeFileSync(join(root, 'package.json'), '{"name":"modelsync"}\n');
  dist = join(root, 'dist');
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--outdir', dist], { encoding: 'utf8' });
  expect(built.status, built.stderr).toBe(0);
  runner = join(root, 'run.mjs');
  writeFileSync(runner, `import { runBundle } from ${JSON.stringify(join(ROOT, 'bin/run-bundle.js'))};\nrunBundle(${JSON.stringify(dist)});\n`);
}, 60_000);

describe('the bundled CLI compiles once per command', () => {
  it('writes a cache on the first run, reads it on the next, and the output is the same', () => {
    const id = readFileSync(join(dist, 'build-id'), 'utf8').trim();
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    const first = runCli(['--help']);
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('Usage: modelsync');
    const name = `none-${id}-${process.version}-${process.arch}.v8`;
    expect(caches()).toEqual([name]);
    const path = join(dist, '.code-cache', name);
    const written = readFileSync(path);
    const mtime = statSync(path).mtimeMs;
    const second = runCli(['--help']);
    expect(second.stdout).toBe(first.stdout);
    // Accepted, so not written again.
    expect(statSync(path).mtimeMs).toBe(mtime);
    expect(readFileSync(path).equals(written)).toBe(true);

    // A command's cache comes from a run of the command: a usage error or its --help compiled almost
    // none of it, and a cache once accepted is never written again.
    const usage = runCli(['validate', '--bogus']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain("unknown option '--bogus'");
    expect(runCli(['validate', '--help']).stdout).toContain('Usage: modelsync validate');
    expect(caches()).toEqual([name]);
    // Another command gets a cache of its own, with what it compiled.
    const checked = runCli(['validate', '--repo', ROOT]);
    expect(checked.status, checked.stderr).toBe(0);
    expect(caches()).toEqual([name, `validate-${id}-${process.version}-${process.arch}.v8`].sort());
  });

  it('a damaged cache, or one left by another build, is replaced and changes nothing', () => {
    const dir = join(tempDir('code-cache-dir-'), 'cache');
    const id = readFileSync(join(dist, 'build-id'), 'utf8').trim();
    const good = runCli(['--version'], { MODELSYNC_CODE_CACHE_DIR: dir });
    expect(good.stdout.trim()).toBe('0.1.0');
    const name = `none-${id}-${process.version}-${process.arch}.v8`;
    writeFileSync(join(dir, name), Buffer.alloc(4096, 0x5a));
    writeFileSync(join(dir, `none-0123456789abcdef-${process.version}-${process.arch}.v8`), 'left by an older build');
    const again = runCli(['--version'], { MODELSYNC_CODE_CACHE_DIR: dir });
    expect(again.status).toBe(0);
    expect(again.stdout.trim()).toBe('0.1.0');
    expect(caches(dir)).toEqual([name]);
    const rewritten = readFileSync(join(dir, name));
    expect(rewritten.length).toBeGreaterThan(10_000);
    expect(rewritten.equals(Buffer.alloc(4096, 0x5a))).toBe(false);
  });

  it('MODELSYNC_CODE_CACHE=0 runs without one', () => {
    const dir = join(tempDir('code-cache-off-'), 'cache');
    const r = runCli(['--version'], { MODELSYNC_CODE_CACHE: '0', MODELSYNC_CODE_CACHE_DIR: dir });
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(caches(dir)).toEqual([]);
  });
});
