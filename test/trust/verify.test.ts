/**
 * The per-commit decision against commits made and signed by the stock
 * `git commit -S` (real gpg, real ssh-keygen): good signatures pass, and
 * every way of not being signed by a trusted key is refused with its reason.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import git from 'isomorphic-git';
import { describe, expect, it } from 'vitest';
import { git as runGit, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { buildPolicy, verifyCommitObject, type TrustPolicy } from '../../src/trust/policy.ts';
import { allowedSignersLine, pgpIdentity, revokePgp, sshIdentity, type PgpIdentity, type SshIdentity } from './keys.ts';

const env = isolatedGitEnv();

function repo(): string {
  const dir = tempDir('modelsync-trust-repo-');
  runGit(['init', '-q', '-b', 'main'], { cwd: dir, env });
  return dir;
}

let n = 0;
function commit(dir: string, id: SshIdentity | PgpIdentity | undefined, extra: string[] = []): string {
  writeTree(dir, { [`f${n++}.txt`]: `change ${n}\n` });
  runGit(['add', '-A'], { cwd: dir, env });
  const email = id?.email ?? 'author@example.test';
  const e = { ...env, GIT_COMMITTER_EMAIL: email, GIT_AUTHOR_EMAIL: email, ...(id?.kind === 'openpgp' ? { GNUPGHOME: id.gnupgHome } : {}) };
  runGit([...(id?.gitArgs ?? []), 'commit', '-q', ...(id ? ['-S'] : []), ...extra, '-m', `change ${n}`], { cwd: dir, env: e });
  return runGit(['rev-parse', 'HEAD'], { cwd: dir, env }).stdout.trim();
}

async function raw(dir: string, oid: string): Promise<Uint8Array> {
  const o = await git.readObject({ fs, gitdir: join(dir, '.git'), oid, format: 'content' });
  return o.object as Uint8Array;
}

const ssh = (ids: SshIdentity[], extra = ''): Promise<TrustPolicy> =>
  buildPolicy({ allowedSigners: { name: 'allowed_signers', text: ids.map((i) => allowedSignersLine(i)).join('') + extra } });
const pgp = (...texts: string[]): Promise<TrustPolicy> => buildPolicy({ gpgKeys: { name: 'trusted.asc', text: texts.join('\n') } });
const now = (): Date => new Date();

describe('SSH signatures made by git commit -S (gpg.format=ssh)', () => {
  it.each(['ed25519', 'rsa', 'ecdsa-256', 'ecdsa-384', 'ecdsa-521'] as const)('a %s key listed in allowed_signers verifies', async (type) => {
    const id = sshIdentity(type);
    const dir = repo();
    const oid = commit(dir, id);
    const v = await verifyCommitObject(await ssh([id]), await raw(dir, oid), now());
    expect(v).toMatchObject({ trusted: true, format: 'ssh' });
    // Stock git agrees it is a good signature by that key.
    // Outside the repo (which may sit right under the system temp dir): in a temp dir of its own.
    const allowed = join(tempDir('trust-allowed-'), 'allowed_signers');
    fs.writeFileSync(allowed, allowedSignersLine(id));
    expect(runGit(['-c', `gpg.ssh.allowedSignersFile=${allowed}`, 'verify-commit', oid], { cwd: dir, env, allowFail: true }).status).toBe(0);
  });

  it('refuses an unknown key, naming its fingerprint', async () => {
    const trusted = sshIdentity('ed25519');
    const other = sshIdentity('ed25519');
    const dir = repo();
    const oid = commit(dir, other);
    const v = await verifyCommitObject(await ssh([trusted]), await raw(dir, oid), now());
    expect(v.trusted).toBe(false);
    expect(!v.trusted && v.reason).toMatch(/^signed by SSH key SHA256:\S+, which is not in allowed_signers$/);
    // Trusting only OpenPGP keys, an SSH signature is refused for what it is.
    const pgpOnly = await pgp(pgpIdentity().armoredPublic);
    expect(await verifyCommitObject(pgpOnly, await raw(dir, oid), now())).toMatchObject({ trusted: false, reason: expect.stringMatching(/^signed with SSH key SHA256:\S+, but no allowed_signers are configured$/) });
  });

  it('honours principals: a trusted key committing as someone its line does not allow is refused', async () => {
    const id = sshIdentity('ed25519', 'release@example.test');
    const dir = repo();
    const oid = commit(dir, { ...id, email: 'intern@example.test' });
    const policy = await buildPolicy({ allowedSigners: { name: 'allowed_signers', text: allowedSignersLine(id, 'release@example.test') } });
    const v = await verifyCommitObject(policy, await raw(dir, oid), now());
    expect(!v.trusted && v.reason).toMatch(/allows "release@example.test", not the committer "intern@example.test"/);
    const wildcard = await buildPolicy({ allowedSigners: { name: 'allowed_signers', text: allowedSignersLine(id, '*@example.test,!mallory@example.test') } });
    expect((await verifyCommitObject(wildcard, await raw(dir, oid), now())).trusted).toBe(true);
  });

  it('honours namespaces= and valid-before= on the line', async () => {
    const id = sshIdentity('ed25519');
    const dir = repo();
    const oid = commit(dir, id);
    const ns = await buildPolicy({ allowedSigners: { name: 'a', text: allowedSignersLine(id, id.email, 'namespaces="file"') } });
    expect((await verifyCommitObject(ns, await raw(dir, oid), now())) as unknown).toMatchObject({ trusted: false, reason: expect.stringMatching(/namespace "git"/) });
    const old = await buildPolicy({ allowedSigners: { name: 'a', text: allowedSignersLine(id, id.email, 'valid-before="20200101Z"') } });
    expect((await verifyCommitObject(old, await raw(dir, oid), now())) as unknown).toMatchObject({ trusted: false, reason: expect.stringMatching(/expired at 2020-01-01/) });
    const ok = await buildPolicy({ allowedSigners: { name: 'a', text: allowedSignersLine(id, id.email, 'namespaces="git",valid-after="20200101Z"') } });
    expect((await verifyCommitObject(ok, await raw(dir, oid), now())).trusted).toBe(true);
  });

  it('refuses a signature made for another namespace (ssh-keygen -Y sign -n file over the same payload)', async () => {
    const id = sshIdentity('ed25519');
    const dir = repo();
    const oid = commit(dir, id);
    const body = Buffer.from(await raw(dir, oid)).toString('latin1');
    const payload = body.replace(/gpgsig [\s\S]*?-----END SSH SIGNATURE-----\n/, '');
    const tmp = join(tempDir(), 'payload');
    fs.writeFileSync(tmp, payload, 'latin1');
    runGit(['--version'], { cwd: dir, env });
    const r = (await import('node:child_process')).spawnSync('ssh-keygen', ['-Y', 'sign', '-n', 'file', '-f', id.keyFile, tmp], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const sig = fs.readFileSync(`${tmp}.sig`, 'utf8').trim().split('\n').join('\n ');
    const forged = payload.replace(/\ncommitter ([^\n]*)\n/, `\ncommitter $1\ngpgsig ${sig}\n`);
    const v = await verifyCommitObject(await ssh([id]), Buffer.from(forged, 'latin1'), now());
    expect(!v.trusted && v.reason).toMatch(/namespace "file", not "git"/);
  });

  it('refuses a signed commit whose tree (or message) was changed afterwards', async () => {
    const id = sshIdentity('ed25519');
    const dir = repo();
    commit(dir, undefined);
    const oid = commit(dir, id);
    const policy = await ssh([id]);
    const good = Buffer.from(await raw(dir, oid)).toString('latin1');
    // The tree of the first commit, under the second commit's signature: a replayed signature.
    const otherTree = runGit(['rev-parse', 'HEAD~1^{tree}'], { cwd: dir, env }).stdout.trim();
    const retreed = good.replace(/^tree [0-9a-f]{40}/, `tree ${otherTree}`);
    expect(retreed).not.toBe(good);
    expect(await verifyCommitObject(policy, Buffer.from(retreed, 'latin1'), now())).toMatchObject({ trusted: false, reason: expect.stringMatching(/^bad SSH signature by ssh-ed25519 SHA256:/) });
    // The same object written into the repo with stock git (hash-object), as a forged push would carry it.
    const forgedOid = runGit(['hash-object', '-t', 'commit', '-w', '--stdin'], { cwd: dir, env, input: retreed }).stdout.trim();
    expect(await verifyCommitObject(policy, await raw(dir, forgedOid), now())).toMatchObject({ trusted: false });
    const remessaged = good.replace(/change \d+\n$/, 'deploy everything\n');
    expect((await verifyCommitObject(policy, Buffer.from(remessaged, 'latin1'), now())).trusted).toBe(false);
  });

  it('refuses an unsigned commit and a malformed signature', async () => {
    const id = sshIdentity('ed25519');
    const dir = repo();
    const oid = commit(dir, undefined);
    expect(await verifyCommitObject(await ssh([id]), await raw(dir, oid), now())).toEqual({ trusted: false, reason: 'unsigned' });
    const signed = Buffer.from(await raw(dir, commit(dir, id))).toString('latin1');
    const mangled = signed.replace(/(gpgsig -----BEGIN SSH SIGNATURE-----\n )U1NIU0lH/, '$1AAAAAAAA');
    expect((await verifyCommitObject(await ssh([id]), Buffer.from(mangled, 'latin1'), now())) as unknown).toMatchObject({ trusted: false, reason: expect.stringMatching(/malformed SSH signature/) });
  });
});

describe('OpenPGP signatures made by git commit -S (gpg)', () => {
  it.each(['ed25519', 'rsa3072'])('a %s key in gpg_keys verifies', async (algo) => {
    const id = pgpIdentity({ algo });
    const dir = repo();
    const oid = commit(dir, id);
    const v = await verifyCommitObject(await pgp(id.armoredPublic), await raw(dir, oid), now());
    expect(v).toEqual({ trusted: true, format: 'openpgp', signer: `${id.fingerprint} (Release <${id.email}>)` });
  });

  it('refuses a key not in gpg_keys, a tampered tree, and SSH-only trust', async () => {
    const id = pgpIdentity();
    const other = pgpIdentity();
    const dir = repo();
    commit(dir, undefined);
    const oid = commit(dir, id);
    const v = await verifyCommitObject(await pgp(other.armoredPublic), await raw(dir, oid), now());
    expect(!v.trusted && v.reason).toMatch(/^signed by OpenPGP key [0-9A-F]{16}, which is not in gpg_keys$/);
    const otherTree = runGit(['rev-parse', 'HEAD~1^{tree}'], { cwd: dir, env }).stdout.trim();
    const retreed = Buffer.from(Buffer.from(await raw(dir, oid)).toString('latin1').replace(/^tree [0-9a-f]{40}/, `tree ${otherTree}`), 'latin1');
    expect((await verifyCommitObject(await pgp(id.armoredPublic), retreed, now())) as unknown).toMatchObject({ trusted: false, reason: expect.stringMatching(/^bad OpenPGP signature by key/) });
    const sshOnly = await ssh([sshIdentity('ed25519')]);
    expect((await verifyCommitObject(sshOnly, await raw(dir, oid), now())) as unknown).toMatchObject({ trusted: false, reason: 'signed with OpenPGP, but no gpg_keys are configured' });
  });

  it('refuses a commit signed by a key revoked since', async () => {
    const id = pgpIdentity();
    const dir = repo();
    const oid = commit(dir, id);
    expect((await verifyCommitObject(await pgp(id.armoredPublic), await raw(dir, oid), now())).trusted).toBe(true);
    const revoked = revokePgp(id);
    const v = await verifyCommitObject(await pgp(revoked), await raw(dir, oid), now());
    expect(!v.trusted && v.reason).toMatch(/revoked/i);
  });

  it('refuses a commit signed (in 2020) by a key that expired since', async () => {
    const id = pgpIdentity({ fakedTime: '20200101T000000', expire: '1y' });
    const dir = repo();
    const oid = commit(dir, id);
    const v = await verifyCommitObject(await pgp(id.armoredPublic), await raw(dir, oid), now());
    expect(!v.trusted && v.reason).toMatch(/no longer valid.*expired/i);
    // While the key was valid, the same signature verified.
    expect((await verifyCommitObject(await pgp(id.armoredPublic), await raw(dir, oid), new Date('2020-06-01T00:00:00Z'))).trusted).toBe(true);
  });
});

describe('trust material', () => {
  it('refuses a bad allowed_signers line with its line number, and an empty trust', async () => {
    await expect(buildPolicy({ allowedSigners: { name: '/etc/a', text: '# keys\nrelease@x ssh-ed25519 !!!\n' } })).rejects.toThrow('/etc/a:2: the key is not base64');
    await expect(buildPolicy({ allowedSigners: { name: '/etc/a', text: '# nobody\n' } })).rejects.toThrow(/no trusted key given/);
    await expect(buildPolicy({ gpgKeys: { name: '/etc/k.asc', text: 'not a key' } })).rejects.toThrow(/\/etc\/k.asc: not armored OpenPGP public keys/);
  });
});
