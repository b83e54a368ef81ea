/**
 * Real signing identities for tests: an OpenPGP key made by gpg in a private
 * GNUPGHOME (batch, no passphrase) and SSH keys made by ssh-keygen, used
 * through the stock `git commit -S` exactly as a publisher would.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { tempDir } from '../helpers/env.ts';

// gpg starts a gpg-agent per GNUPGHOME: stop each before its directory goes (hooks run last-registered first).
const homes: string[] = [];
afterAll(() => {
  for (const h of homes.splice(0)) spawnSync('gpgconf', ['--kill', 'all'], { env: { ...process.env, GNUPGHOME: h } });
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, input?: string): string {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

export interface SshIdentity {
  kind: 'ssh';
  /** Private key file: what user.signingkey names. */
  keyFile: string;
  /** `ssh-ed25519 AAAA...`. */
  publicKey: string;
  email: string;
  /** The git -c options that make `git commit -S` sign with this key. */
  gitArgs: string[];
}

export interface PgpIdentity {
  kind: 'openpgp';
  gnupgHome: string;
  fingerprint: string;
  email: string;
  /** `gpg --armor --export`: what gpg_keys holds. */
  armoredPublic: string;
  gitArgs: string[];
  /** The environment gpg must see (GNUPGHOME). */
  env: NodeJS.ProcessEnv;
}

export function sshIdentity(type: 'ed25519' | 'rsa' | 'ecdsa-256' | 'ecdsa-384' | 'ecdsa-521', email = 'release@example.test'): SshIdentity {
  const dir = tempDir('modelsync-ssh-');
  const keyFile = join(dir, 'key');
  const [t, bits] = type.startsWith('ecdsa') ? ['ecdsa', type.slice(6)] : type === 'rsa' ? ['rsa', '3072'] : ['ed25519', undefined];
  run('ssh-keygen', ['-q', '-t', t!, ...(bits ? ['-b', bits] : []), '-N', '', '-C', email, '-f', keyFile], process.env);
  const publicKey = readFileSync(`${keyFile}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  return { kind: 'ssh', keyFile, publicKey, email, gitArgs: ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${keyFile}`] };
}

export function pgpIdentity(opts: { email?: string; algo?: string; expire?: string; fakedTime?: string } = {}): PgpIdentity {
  const email = opts.email ?? 'release@example.test';
  const gnupgHome = tempDir('modelsync-gnupg-');
  homes.push(gnupgHome);
  chmodSync(gnupgHome, 0o700);
  const env: NodeJS.ProcessEnv = { ...process.env, GNUPGHOME: gnupgHome };
  const faked = opts.fakedTime ? ['--faked-system-time', `${opts.fakedTime}!`] : [];
  run('gpg', ['--batch', '--quiet', ...faked, '--passphrase', '', '--quick-gen-key', `Release <${email}>`, opts.algo ?? 'ed25519', 'sign', opts.expire ?? 'never'], env);
  const colons = run('gpg', ['--batch', '--with-colons', ...faked, '--list-keys', email], env);
  const fingerprint = /^fpr:(?:[^:]*:){8}([0-9A-F]{40}):/m.exec(colons)![1]!;
  const armoredPublic = run('gpg', ['--batch', '--armor', ...faked, '--export', fingerprint], env);
  let program: string[] = [];
  if (opts.fakedTime) {
    // git runs gpg.program to sign: a wrapper signs at the faked time, as an old commit would have been.
    const wrapper = join(gnupgHome, 'gpg-at-time');
    writeFileSync(wrapper, `#!/bin/sh\nexec gpg --faked-system-time '${opts.fakedTime}!' "$@"\n`, { mode: 0o755 });
    program = ['-c', `gpg.program=${wrapper}`];
  }
  return { kind: 'openpgp', gnupgHome, fingerprint, email, armoredPublic, gitArgs: ['-c', 'gpg.format=openpgp', '-c', `user.signingkey=${fingerprint}`, ...program], env };
}

/** Revoke a key with the revocation certificate gpg made at generation; returns the revoked public key, armored. */
export function revokePgp(id: PgpIdentity): string {
  const cert = readFileSync(join(id.gnupgHome, 'openpgp-revocs.d', `${id.fingerprint}.rev`), 'utf8').replace(/^:-----BEGIN/m, '-----BEGIN');
  run('gpg', ['--batch', '--quiet', '--import'], id.env, cert);
  return run('gpg', ['--batch', '--armor', '--export', id.fingerprint], id.env);
}

/** An allowed_signers line for an identity (principals: its e-mail, unless given). */
export function allowedSignersLine(id: SshIdentity, principals = id.email, options = ''): string {
  return `${principals}${options ? ` ${options}` : ''} ${id.publicKey}\n`;
}
