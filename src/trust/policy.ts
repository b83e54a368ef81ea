/**
 * Which keys a site trusts, and the one decision made per commit: given the
 * raw commit object, was it signed by one of them? Pure apart from the clock
 * passed in; it never reads files or Git itself.
 */
import { createHash } from 'node:crypto';
import type { PublicKey } from 'openpgp';
import { matchPatternList, parseAllowedSigners, type AllowedSigner } from './allowed-signers.ts';
import { CommitFormatError, splitCommit } from './commit-object.ts';
import { isPgpSignature, readPgpKeys, verifyPgpSignature } from './openpgp.ts';
import { isSshSignature, verifySshSignature } from './sshsig.ts';

/** The namespace git uses for commit signatures (`ssh-keygen -Y sign -n git`). */
export const GIT_NAMESPACE = 'git';

export type Verdict =
  | { trusted: true; format: 'ssh' | 'openpgp'; signer: string }
  | { trusted: false; reason: string };

export interface TrustPolicy {
  signers: readonly AllowedSigner[];
  pgpKeys: readonly PublicKey[];
  /** sha256 over the trust material: a verdict cached under another policy does not count. */
  id: string;
  /** Where the material came from, for messages. */
  describe: string;
  /** The allowed_signers file's name, for "not in …". */
  signersName?: string;
}

export class TrustConfigError extends Error {}

export async function buildPolicy(input: { allowedSigners?: { name: string; text: string }; gpgKeys?: { name: string; text: string } }): Promise<TrustPolicy> {
  const h = createHash('sha256');
  let signers: AllowedSigner[] = [];
  let pgpKeys: PublicKey[] = [];
  if (input.allowedSigners) {
    const parsed = parseAllowedSigners(input.allowedSigners.text);
    if (parsed.problems.length) {
      throw new TrustConfigError(parsed.problems.map((p) => `${input.allowedSigners!.name}:${p.line}: ${p.message}`).join('\n'));
    }
    signers = parsed.signers;
    h.update(`ssh\0${input.allowedSigners.text}\0`);
  }
  if (input.gpgKeys) {
    try {
      pgpKeys = await readPgpKeys(input.gpgKeys.text);
    } catch (err) {
      throw new TrustConfigError(`${input.gpgKeys.name}: not armored OpenPGP public keys: ${(err as Error).message.split('\n')[0]}`);
    }
    h.update(`pgp\0${input.gpgKeys.text}\0`);
  }
  if (signers.length === 0 && pgpKeys.length === 0) {
    throw new TrustConfigError(`${[input.allowedSigners?.name, input.gpgKeys?.name].filter(Boolean).join(' and ') || 'verify'}: no trusted key given; a site that trusts nobody would apply nothing`);
  }
  return {
    signers, pgpKeys, id: h.digest('hex'), describe: [input.allowedSigners?.name, input.gpgKeys?.name].filter(Boolean).join(', '),
    ...(input.allowedSigners ? { signersName: input.allowedSigners.name } : {}),
  };
}

/** Decide one commit from its raw object bytes (content without the `commit <size>\0` header). */
export async function verifyCommitObject(policy: TrustPolicy, raw: Uint8Array, now: Date): Promise<Verdict> {
  let c;
  try {
    c = splitCommit(raw);
  } catch (err) {
    if (err instanceof CommitFormatError) return { trusted: false, reason: `malformed commit: ${err.message}` };
    throw err;
  }
  if (!c.signature) return { trusted: false, reason: 'unsigned' };
  if (isSshSignature(c.signature)) {
    const v = verifySshSignature(c.signature, c.payload, GIT_NAMESPACE);
    if (!v.ok) return { trusted: false, reason: v.reason };
    if (policy.signers.length === 0) return { trusted: false, reason: `signed with SSH key ${v.fingerprint}, but no allowed_signers are configured` };
    return sshTrust(policy.signers, v.key, v.fingerprint, c.committerEmail, c.committerTime, policy.signersName ?? 'allowed_signers');
  }
  if (isPgpSignature(c.signature)) {
    if (policy.pgpKeys.length === 0) return { trusted: false, reason: 'signed with OpenPGP, but no gpg_keys are configured' };
    const v = await verifyPgpSignature(c.signature, c.payload, policy.pgpKeys, now);
    if (!v.ok) return { trusted: false, reason: v.reason };
    return { trusted: true, format: 'openpgp', signer: `${v.fingerprint}${v.userIds[0] ? ` (${v.userIds[0]})` : ''}` };
  }
  return { trusted: false, reason: 'signature is neither OpenPGP nor SSH (X.509 signatures are not supported)' };
}

/**
 * An SSH key is trusted for a commit when a line of allowed_signers lists it
 * with a principal pattern matching the committer's e-mail, the namespace
 * git, and a validity window containing the commit time, as
 * `ssh-keygen -Y verify -I <committer> -n git -Overify-time=<commit time>`.
 */
function sshTrust(signers: readonly AllowedSigner[], key: Buffer, fp: string, email: string, time: number, where: string): Verdict {
  const lines = signers.filter((s) => !s.certAuthority && s.key.equals(key));
  if (lines.length === 0) return { trusted: false, reason: `signed by SSH key ${fp}, which is not in ${where}` };
  const why: string[] = [];
  for (const s of lines) {
    if (!matchPatternList(email, s.principals)) {
      why.push(`line ${s.line} allows ${JSON.stringify(s.principals)}, not the committer ${JSON.stringify(email)}`);
      continue;
    }
    if (s.namespaces !== undefined && !matchPatternList(GIT_NAMESPACE, s.namespaces)) {
      why.push(`line ${s.line} does not allow namespace "git"`);
      continue;
    }
    if (s.validAfter !== undefined && time < s.validAfter) {
      why.push(`line ${s.line} is valid only after ${new Date(s.validAfter * 1000).toISOString()}`);
      continue;
    }
    if (s.validBefore !== undefined && time > s.validBefore) {
      why.push(`line ${s.line} expired at ${new Date(s.validBefore * 1000).toISOString()}`);
      continue;
    }
    return { trusted: true, format: 'ssh', signer: `${email} ${fp}` };
  }
  return { trusted: false, reason: `SSH key ${fp} is not trusted for this commit: ${why.join('; ')}` };
}
