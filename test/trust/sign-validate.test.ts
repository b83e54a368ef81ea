/**
 * publish / promote / rollback --sign sign with git's own signing config
 * (stock git verifies the result), and `validate --verify-signatures` lets
 * CI refuse a pull request that verifying sites would refuse.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, git, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { allowedSignersLine, pgpIdentity, sshIdentity, type PgpIdentity, type SshIdentity } from './keys.ts';

let env: NodeJS.ProcessEnv;
let ssh: SshIdentity;
let pgp: PgpIdentity;
let signers: string;
let keys: string;
beforeAll(() => {
  env = isolatedGitEnv();
  ssh = sshIdentity('ed25519', 'author@example.test');
  pgp = pgpIdentity({ email: 'author@example.test' });
  const d = tempDir();
  signers = join(d, 'allowed_signers');
  writeFileSync(signers, allowedSignersLine(ssh));
  keys = join(d, 'trusted.asc');
  writeFileSync(keys, pgp.armoredPublic);
});

const g = (dir: string, ...args: string[]): string => git(args, { cwd: dir, env }).stdout.trim();
function ok(args: string[], cwd: string, e = env): string {
  const r = cli(args, { cwd, env: e });
  if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}
function registry(): string {
  const dir = join(tempDir(), 'reg');
  ok(['init', dir, '--bare-example'], tempDir());
  return dir;
}
function modelFile(content: string): string {
  const f = join(tempDir(), 'model.bin');
  writeFileSync(f, content);
  return f;
}

describe('--sign', () => {
  it('publish, promote and rollback --sign with gpg.format=ssh: stock git verify-commit accepts each commit, and so does modelsync', () => {
    const dir = registry();
    g(dir, 'config', 'gpg.format', 'ssh');
    g(dir, 'config', 'user.signingkey', ssh.keyFile);
    const base = g(dir, 'rev-parse', 'HEAD');
    ok(['publish', 'm', '2025-01-01', modelFile('one'), '--sign'], dir);
    ok(['publish', 'm', '2025-02-01', modelFile('two'), '--sign', '--no-promote'], dir);
    ok(['promote', 'm', '2025-02-01', '--sign'], dir);
    ok(['rollback', 'm', '--sign'], dir);
    const commits = g(dir, 'rev-list', `${base}..HEAD`).split('\n');
    expect(commits).toHaveLength(4);
    for (const c of commits) {
      const r = git(['-c', `gpg.ssh.allowedSignersFile=${signers}`, 'verify-commit', c], { cwd: dir, env, allowFail: true });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('Good "git" signature for author@example.test');
    }
    const out = ok(['validate', '--verify-signatures', '--allowed-signers', signers, '--base', base], dir);
    expect(out).toContain('signatures ok: 4 commits in');
    expect(out.match(/^signed {5}[0-9a-f]{12} {2}author@example.test SHA256:/gm)).toHaveLength(4);
  });

  it('a staged promote and rollout steps --sign: every step commit verifies, so sites with verify: follow the rollout', () => {
    const dir = registry();
    g(dir, 'config', 'gpg.format', 'ssh');
    g(dir, 'config', 'user.signingkey', ssh.keyFile);
    ok(['publish', 'm', '2025-01-01', modelFile('one'), '--sign'], dir);
    ok(['publish', 'm', '2025-02-01', modelFile('two'), '--sign', '--no-promote'], dir);
    writeFileSync(join(dir, 'sites/alpha.yaml'), 'labels: {wave: canary}\n');
    const regFile = join(dir, 'registry/model_registry.yaml');
    const text = readFileSync(regFile, 'utf8').replace(/(current_version: "2025-01-01"\n)/, '$1    rollout:\n      waves:\n        - {name: canary, sites: {labels: {wave: canary}}, soak: 1m}\n        - {name: all, sites: all}\n      halt: {degraded: 1}\n');
    expect(text).toContain('rollout:');
    writeFileSync(regFile, text);
    g(dir, 'add', '-A');
    g(dir, '-c', 'commit.gpgsign=true', 'commit', '-q', '--no-verify', '-m', 'm: rollout policy');
    const base = g(dir, 'rev-parse', 'HEAD');
    expect(ok(['promote', 'm', '2025-02-01', '--sign'], dir)).toContain('rollout status m');
    ok(['rollout', 'pause', 'm', '--sign'], dir);
    ok(['rollout', 'resume', 'm', '--sign'], dir);
    const commits = g(dir, 'rev-list', `${base}..HEAD`).split('\n');
    expect(commits).toHaveLength(3);
    for (const c of commits) {
      const r = git(['-c', `gpg.ssh.allowedSignersFile=${signers}`, 'verify-commit', c], { cwd: dir, env, allowFail: true });
      expect(r.status, r.stderr).toBe(0);
    }
    // Without --sign (and no commit.gpgsign) a step is unsigned, which a verifying site refuses.
    ok(['rollout', 'pause', 'm'], dir);
    expect(git(['-c', `gpg.ssh.allowedSignersFile=${signers}`, 'verify-commit', 'HEAD'], { cwd: dir, env, allowFail: true }).status).not.toBe(0);
  });

  it('promote --sign with OpenPGP (gpg.format default, user.signingkey a fingerprint): stock git and modelsync verify it', () => {
    const dir = registry();
    const e = { ...env, GNUPGHOME: pgp.gnupgHome };
    g(dir, 'config', 'user.signingkey', pgp.fingerprint);
    ok(['publish', 'm', '2025-01-01', modelFile('one'), '--sign'], dir, e);
    const r = git(['verify-commit', 'HEAD'], { cwd: dir, env: e, allowFail: true });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('Good signature from "Release <author@example.test>"');
    expect(ok(['validate', '--verify-signatures', '--gpg-keys', keys, '--rev', 'HEAD'], dir)).toContain('signatures ok: tip');
  });

  it('commit.gpgsign=true signs without --sign, as git commit would; --no-sign does not', () => {
    const dir = registry();
    g(dir, 'config', 'gpg.format', 'ssh');
    g(dir, 'config', 'user.signingkey', ssh.keyFile);
    g(dir, 'config', 'commit.gpgsign', 'true');
    ok(['publish', 'm', '2025-01-01', modelFile('one')], dir);
    expect(git(['-c', `gpg.ssh.allowedSignersFile=${signers}`, 'verify-commit', 'HEAD'], { cwd: dir, env, allowFail: true }).status).toBe(0);
    ok(['publish', 'm', '2025-02-01', modelFile('two'), '--no-sign'], dir);
    const r = git(['-c', `gpg.ssh.allowedSignersFile=${signers}`, 'verify-commit', 'HEAD'], { cwd: dir, env, allowFail: true });
    expect(r.status).not.toBe(0);
  });

  it('without a signing key, --sign stops before anything is committed', () => {
    const dir = registry();
    g(dir, 'config', 'gpg.format', 'ssh');
    const before = g(dir, 'rev-parse', 'HEAD');
    const r = cli(['publish', 'm', '2025-01-01', modelFile('one'), '--sign'], { cwd: dir, env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--sign: gpg.format is ssh but user.signingkey is not set');
    expect(g(dir, 'rev-parse', 'HEAD')).toBe(before);
  });
});

describe('validate --verify-signatures', () => {
  it('lists every untrusted commit of a pull request and exits 1; the signed tip alone passes', () => {
    const dir = registry();
    const base = g(dir, 'rev-parse', 'HEAD');
    g(dir, 'checkout', '-q', '-b', 'pr');
    g(dir, 'config', 'gpg.format', 'ssh');
    g(dir, 'config', 'user.signingkey', ssh.keyFile);
    ok(['publish', 'm', '2025-01-01', modelFile('one'), '--sign'], dir);
    ok(['publish', 'm', '2025-02-01', modelFile('two')], dir);
    const unsigned = g(dir, 'rev-parse', 'HEAD');
    ok(['promote', 'm', '2025-01-01', '--sign'], dir);
    const r = cli(['validate', '--verify-signatures', '--allowed-signers', signers, '--base', base], { cwd: dir, env });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`UNTRUSTED  ${unsigned.slice(0, 12)}  unsigned`);
    expect(r.stdout).toContain('signatures refused: 1 of 3 commits in');
    const json = JSON.parse(cli(['validate', '--verify-signatures', '--allowed-signers', signers, '--base', base, '--json'], { cwd: dir, env }).stdout) as { ok: boolean; signatures: { commits: Array<{ commit: string; trusted: boolean }> } };
    expect(json.ok).toBe(false);
    expect(json.signatures.commits.filter((c) => !c.trusted).map((c) => c.commit)).toEqual([unsigned]);
    // The same tip alone is signed: tip-mode sites would take it.
    expect(ok(['validate', '--verify-signatures', '--allowed-signers', signers], dir)).toContain('signatures ok: tip');
    const usage = cli(['validate', '--base', base], { cwd: dir, env });
    expect(usage.status).toBe(2);
  });
});
