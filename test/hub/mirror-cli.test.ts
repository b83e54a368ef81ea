/**
 * `modelsync serve --mirror` as an operator runs it on a datasink: a process
 * that says what it mirrors and which URLs local agents use, serves a clone
 * with stock `git` + `git lfs` from its own copy, refuses a push naming the
 * upstream, never logs the upstream token, and stops on SIGTERM. Wrong flags
 * are usage errors (exit 2).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { bytes, waitFor } from '../agent/helpers/agent.ts';
import { CLI, cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

const env = isolatedGitEnv();

describe('modelsync serve --mirror', () => {
  test('mirrors the upstream for stock git and git lfs, refuses pushes, keeps the token out of its logs, stops on SIGTERM', async () => {
    const th = await startTestHub({ tokens: true, sites: ['north-1'] });
    const reg = TestRegistry.init(tempDir('mirror-cli-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(100_000, 1) });
    reg.setCurrent('face', '1');
    reg.site('north-1', {});
    reg.commit('v1');
    reg.git('remote', 'add', 'origin', th.repoUrl('registry', th.secrets.publisher));
    await gitAsync(['push', '-q', '-u', 'origin', 'main'], { cwd: reg.dir, env });

    const dir = tempDir('mirror-cli-');
    const tokenFile = join(dir, 'upstream-token');
    writeFileSync(tokenFile, `${th.secrets.admin}\n`, { mode: 0o600 });
    const child = spawn(process.execPath, [CLI, 'serve', '--mirror', `${th.url}/registry.git`, '--token-file', tokenFile, '--data', join(dir, 'data'), '--listen', '127.0.0.1:0'], {
      env: { ...process.env, MODELSYNC_LOG_LEVEL: 'debug' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => /listening on http:\/\/\S+/.test(out), `serve --mirror to start (${err})`, 20_000);
      const url = /listening on (http:\/\/\S+)/.exec(out)![1]!;
      expect(out).toContain(`read-only mirror of ${th.url}/registry.git; local agents use registry: ${url}/registry.git and hub: ${url}`);

      // Stock git and git lfs clone the mirror: commits and LFS content come from it.
      await waitFor(async () => (await gitAsync(['ls-remote', `${url}/registry.git`], { cwd: dir, env, allowFail: true })).stdout.includes(`${reg.head()}\trefs/heads/main`), 'the mirror to hold the upstream head');
      const clone = join(dir, 'clone');
      await gitAsync(['clone', '-q', `${url}/registry.git`, clone], { cwd: dir, env });
      expect(readFileSync(join(clone, 'registry/face/1/model.bin')).equals(bytes(100_000, 1))).toBe(true);

      const push = await gitAsync(['push', `${url}/registry.git`, 'main:refs/heads/elsewhere'], { cwd: clone, env, allowFail: true });
      expect(push.status).not.toBe(0);
      expect(push.stderr).toContain(`this hub is a read-only mirror of ${th.url}/registry.git: push and upload there`);

      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('modelsync_mirror_upstream_connected 1');
      expect(metrics).toMatch(/modelsync_mirror_objects_fetched_total 1\b/);
      // Prometheus's own checker (Debian's prometheus package) accepts the page, mirror series included.
      const check = spawnSync('/usr/bin/promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
      expect(check.error).toBeUndefined();
      expect(check.status, check.stdout + check.stderr).toBe(0);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(err).toContain('mirroring the upstream (read-only)');
      expect(err).not.toContain(th.secrets.admin);
      expect(err).not.toContain(Buffer.from(`modelsync:${th.secrets.admin}`).toString('base64'));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  test('flags that do not fit are usage errors', async () => {
    const dir = tempDir('mirror-cli-usage-');
    const noMirror = await cliAsync(['serve', '--data', join(dir, 'd'), '--token-file', join(dir, 't')], { cwd: dir, env });
    expect(noMirror.status).toBe(2);
    expect(noMirror.stderr).toContain('--token-file is the upstream token of a mirror: it needs --mirror');
    const badUrl = await cliAsync(['serve', '--data', join(dir, 'd'), '--mirror', 'ftp://hub.example/registry.git'], { cwd: dir, env });
    expect(badUrl.status).toBe(2);
    expect(badUrl.stderr).toContain('--mirror must be an http(s) URL');
    const noRepo = await cliAsync(['serve', '--data', join(dir, 'd'), '--mirror', 'http://127.0.0.1:1/'], { cwd: dir, env });
    expect(noRepo.status).toBe(2);
    expect(noRepo.stderr).toContain('--mirror must end in /<repo>.git');
    const missingToken = await cliAsync(['serve', '--data', join(dir, 'd'), '--mirror', 'http://127.0.0.1:1/registry.git', '--token-file', join(dir, 'nope')], { cwd: dir, env });
    expect(missingToken.status).toBe(1);
    expect(missingToken.stderr).toContain(`--token-file ${join(dir, 'nope')}: ENOENT`);
  });
});
