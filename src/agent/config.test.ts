import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { loadAgentConfig, parseListen, readToken } from './config.ts';

// Removed after the file: these directories hold token files.
function dir(): string {
  return tempDir('modelsync-agentcfg-');
}

const base = `site: beta
registry: https://hub.example/registry.git
store: ./store
token_file: token
services:
  - name: sentinel
    models: [face_recognition]
    restart: [systemctl, restart, sentinel]
    health: {command: [/opt/sentinel/smoke-test], timeout_s: 60}
`;

describe('loadAgentConfig', () => {
  it('reads agent.yaml, resolves paths against its directory, applies defaults', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), base);
    const cfg = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: '/' });
    expect(cfg).toMatchObject({ site: 'beta', branch: 'main', store: join(d, 'store'), token_file: join(d, 'token'), jitter_s: 30, templates: true });
    expect(cfg.services[0]!.health).toEqual({ command: ['/opt/sentinel/smoke-test'], timeout_s: 60, interval_s: 1 });
  });

  it('lets flags win over variables, and variables over the file', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), `${base}jitter_s: 5\nbranch: prod\n`);
    const cfg = await loadAgentConfig({
      file: join(d, 'agent.yaml'),
      cwd: '/work',
      env: { MODELSYNC_JITTER_S: '7', MODELSYNC_BRANCH: 'staging', MODELSYNC_STORE: 'envstore', MODELSYNC_TEMPLATES: 'false' },
      flags: { jitterS: '9', store: 'flagstore' },
    });
    expect(cfg.jitter_s).toBe(9);
    expect(cfg.branch).toBe('staging');
    expect(cfg.store).toBe('/work/flagstore');
    expect(cfg.templates).toBe(false);
  });

  it('verify: paths in the file resolve against it; flags and MODELSYNC_VERIFY_* variables set keys inside the block', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), `${base}verify:\n  allowed_signers: keys/allowed_signers\n`);
    const fromFile = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: '/' });
    expect(fromFile.verify).toEqual({ allowed_signers: join(d, 'keys/allowed_signers'), mode: 'tip' });
    const layered = await loadAgentConfig({
      file: join(d, 'agent.yaml'),
      cwd: '/work',
      env: { MODELSYNC_VERIFY_MODE: 'every', MODELSYNC_VERIFY_GPG_KEYS: 'env.asc' },
      flags: { verifyGpgKeys: 'flag.asc' },
    });
    expect(layered.verify).toEqual({ allowed_signers: join(d, 'keys/allowed_signers'), gpg_keys: '/work/flag.asc', mode: 'every' });
    await expect(loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: '/', env: { MODELSYNC_VERIFY_MODE: 'all' } })).rejects.toThrow(/MODELSYNC_VERIFY_MODE: mode: /);
    writeFileSync(join(d, 'agent.yaml'), `${base}verify:\n  mode: every\n  alowed_signers: x\n`);
    await expect(loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: '/' })).rejects.toThrow(/agent.yaml:\d+:\d+: verify.alowed_signers: unknown key "alowed_signers" \(did you mean "allowed_signers"\?\)/);
    writeFileSync(join(d, 'agent.yaml'), `${base}verify:\n  mode: every\n`);
    await expect(loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: '/' })).rejects.toThrow(/verify: give allowed_signers, gpg_keys or both/);
  });

  it('works from flags and variables alone', async () => {
    const cfg = await loadAgentConfig({
      cwd: '/srv',
      env: { MODELSYNC_SITE: 'gamma', MODELSYNC_SERVICES: '[{"name":"ovms","models":["m"],"reload":{"http":"http://127.0.0.1:9001/v1/config/reload"}}]' },
      flags: { registry: 'reg', store: 's' },
    });
    expect(cfg).toMatchObject({ site: 'gamma', registry: '/srv/reg', store: '/srv/s' });
    expect(cfg.services[0]!.reload).toEqual({ http: 'http://127.0.0.1:9001/v1/config/reload', method: 'POST' });
  });

  it('positions problems in the file as file:line:col', async () => {
    const d = dir();
    const f = join(d, 'agent.yaml');
    writeFileSync(f, `${base}jiter_s: 5\nlisten: nowhere\n`.replace('timeout_s: 60', 'timeout_s: -1'));
    const err = await loadAgentConfig({ file: f, cwd: d }).catch((e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'ConfigError' });
    expect((err as Error).message).toMatch(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:10:1: jiter_s: unknown key "jiter_s"`));
    expect((err as Error).message).toMatch(/:9:\d+: services\[0\]\.health\.timeout_s: /);
  });

  it('suggests the agent.yaml key a misspelt one was meant to be, at its own level', async () => {
    const d = dir();
    const f = join(d, 'agent.yaml');
    writeFileSync(f, `${base}jiter_s: 5\nmodles: [x]\n`.replace('restart:', 'restrt:').replace('timeout_s: 60', 'timout_s: 60'));
    const err = await loadAgentConfig({ file: f, cwd: d }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(err.message).toMatch(/jiter_s: unknown key "jiter_s" \(did you mean "jitter_s"\?\)/);
    expect(err.message).toMatch(/services\[0\]\.restrt: unknown key "restrt" \(did you mean "restart"\?\)/);
    expect(err.message).toMatch(/services\[0\]\.health\.timout_s: unknown key "timout_s" \(did you mean "timeout_s"\?\)/);
    // "models" is a registry key, not an agent.yaml one: no hint rather than a wrong one.
    expect(err.message).toMatch(/modles: unknown key "modles"\n|modles: unknown key "modles"$/);
    expect(err.message).not.toMatch(/did you mean "models"/);
  });

  it('is a usage error (exit 2) without any configuration, or with a --config file that does not exist', async () => {
    const d = dir();
    const none = await loadAgentConfig({ cwd: d, env: {} }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(none).toMatchObject({ code: 'UsageError' });
    expect(none.message).toMatch(/agent needs a configuration: give --config <agent.yaml>/);
    const missing = await loadAgentConfig({ file: 'nope.yaml', cwd: d }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(missing).toMatchObject({ code: 'UsageError' });
    expect(missing.message).toMatch(/--config nope\.yaml: no such file/);
    const viaEnv = await loadAgentConfig({ cwd: d, env: { MODELSYNC_CONFIG: 'gone.yaml' } }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(viaEnv.message).toMatch(/MODELSYNC_CONFIG gone\.yaml: no such file/);
    // A file that exists but lacks a required key is invalid content, not usage.
    writeFileSync(join(d, 'agent.yaml'), 'site: beta\nstore: s\n');
    const bad = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(bad).toMatchObject({ code: 'ConfigError' });
  });

  it('names the flag or variable a bad value came from', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), base);
    const e1 = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d, flags: { jitterS: 'soon' } }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(e1.message).toMatch(/--jitter-s: "soon" is not a number/);
    const e2 = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d, env: { MODELSYNC_HUB: 'ftp://x' } }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(e2.message).toMatch(/MODELSYNC_HUB: must be an http\(s\) URL/);
    const e3 = await loadAgentConfig({ cwd: d, flags: { site: 'x', store: 's' } }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(e3).toMatchObject({ code: 'UsageError' });
    expect(e3.message).toMatch(/registry is required: set it in agent.yaml, with --registry or with MODELSYNC_REGISTRY/);
    const e4 = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d, flags: { schedule: '61 * * * *' } }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(e4.message).toMatch(/--schedule: .*not a valid cron expression/);
  });

  it('refuses a schedule firing more than once a minute, naming where it was set (issue 9 item 5)', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), `${base}schedule: "*/10 * * * * *"\n`);
    const e1 = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(e1.message).toMatch(/agent\.yaml:10:11: schedule: "\*\/10 \* \* \* \* \*" fires 6 times a minute .*at most once a minute/);
    const e2 = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d, env: { MODELSYNC_SCHEDULE: '* * * * * *' } }).then(() => new Error('expected a failure'), (e: Error) => e);
    expect(e2.message).toMatch(/MODELSYNC_SCHEDULE: .*fires 60 times a minute/);
    writeFileSync(join(d, 'agent.yaml'), base);
    expect((await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d, flags: { schedule: '0 * * * * *' } })).schedule).toBe('0 * * * * *');
  });

  it('reports YAML syntax errors with their position', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), 'site: beta\nservices: [\n');
    await expect(loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: d })).rejects.toThrow(/agent\.yaml:\d+:\d+: YAML/);
  });
});

describe('readToken', () => {
  it('prefers MODELSYNC_TOKEN, else reads token_file', async () => {
    const d = dir();
    writeFileSync(join(d, 'token'), 'file-token\n');
    expect(await readToken({ token_file: join(d, 'token') }, { MODELSYNC_TOKEN: 'env-token' })).toBe('env-token');
    expect(await readToken({ token_file: join(d, 'token') }, {})).toBe('file-token');
    expect(await readToken({}, {})).toBeUndefined();
    await expect(readToken({ token_file: join(d, 'missing') }, {})).rejects.toThrow(/token_file: cannot read .*ENOENT/);
  });
});

describe('parseListen', () => {
  it('parses host:port forms', () => {
    expect(parseListen('127.0.0.1:9470')).toEqual({ host: '127.0.0.1', port: 9470 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListen('localhost')).toBeNull();
    expect(parseListen('a:99999')).toBeNull();
  });
});

describe('username (HTTP Basic user for the registry host)', () => {
  it('comes from agent.yaml, MODELSYNC_USERNAME or --username (flag wins) and rides in the registry URL', async () => {
    const d = dir();
    writeFileSync(join(d, 'agent.yaml'), `${base}username: gitlab+deploy-token-7\n`);
    const file = await loadAgentConfig({ file: join(d, 'agent.yaml'), cwd: '/' });
    expect(file.username).toBe('gitlab+deploy-token-7');
    expect(new URL(file.registry).username).toBe(encodeURIComponent('gitlab+deploy-token-7'));
    expect(new URL(file.registry).password).toBe('');
    const env = await loadAgentConfig({ file: join(d, 'agent.yaml'), env: { MODELSYNC_USERNAME: 'x-token-auth' }, cwd: '/' });
    expect(new URL(env.registry).username).toBe('x-token-auth');
    const flag = await loadAgentConfig({ file: join(d, 'agent.yaml'), env: { MODELSYNC_USERNAME: 'x-token-auth' }, flags: { username: 'bob' }, cwd: '/' });
    expect(new URL(flag.registry).username).toBe('bob');
  });

  it('is refused without a token to go with it, for a local registry, and with a colon', async () => {
    const d = dir();
    const noToken = base.replace('token_file: token\n', '');
    writeFileSync(join(d, 'a.yaml'), `${noToken}username: deploy\n`);
    await expect(loadAgentConfig({ file: join(d, 'a.yaml'), cwd: '/' })).rejects.toThrow(/a\.yaml:\d+:\d+: username: needs a token to go with it: set token_file \(or MODELSYNC_TOKEN\)/);
    expect((await loadAgentConfig({ file: join(d, 'a.yaml'), env: { MODELSYNC_TOKEN: 't' }, cwd: '/' })).username).toBe('deploy');
    writeFileSync(join(d, 'b.yaml'), `${base.replace('https://hub.example/registry.git', '/srv/registry')}username: deploy\n`);
    await expect(loadAgentConfig({ file: join(d, 'b.yaml'), cwd: '/' })).rejects.toThrow(/username: applies to http\(s\) registries only/);
    writeFileSync(join(d, 'c.yaml'), `${base}username: "a:b"\n`);
    await expect(loadAgentConfig({ file: join(d, 'c.yaml'), cwd: '/' })).rejects.toThrow(/username.*must not contain ":"/);
  });
});
