/**
 * OpenPGP signatures, as `git commit -S` makes them with gpg (a detached,
 * armored binary-document signature over the commit payload), verified with
 * the `openpgp` library against the armored public keys the site trusts.
 *
 * The key must be valid both when it signed and now: a key its owner revoked
 * or let expire stops authorising new deployments, including a tip signed
 * before the revocation that a site has not applied yet.
 */
import type * as openpgp from 'openpgp';

// Loaded when a signature or key is first read: most passes have no OpenPGP trust, and the library is the largest thing a CLI process would parse at start.
const pgp = (): Promise<typeof openpgp> => import('openpgp');

export type PgpVerdict = { ok: true; keyId: string; fingerprint: string; userIds: string[] } | { ok: false; reason: string; keyId?: string };

export function isPgpSignature(armored: string): boolean {
  return armored.trimStart().startsWith('-----BEGIN PGP SIGNATURE-----');
}

export async function readPgpKeys(armored: string): Promise<openpgp.PublicKey[]> {
  const keys = await (await pgp()).readKeys({ armoredKeys: armored });
  // A secret key in a trust file is a mistake to point out, never a reason to hold secrets here.
  return keys.map((k) => (k.isPrivate() ? k.toPublic() : (k as openpgp.PublicKey)));
}

export async function verifyPgpSignature(armored: string, payload: Uint8Array, keys: readonly openpgp.PublicKey[], now: Date): Promise<PgpVerdict> {
  const lib = await pgp();
  let signature: openpgp.Signature;
  try {
    signature = await lib.readSignature({ armoredSignature: armored });
  } catch (err) {
    return { ok: false, reason: `malformed OpenPGP signature: ${(err as Error).message}` };
  }
  const ids = signature.getSigningKeyIDs();
  const keyId = ids[0]?.toHex().toUpperCase();
  const key = keys.find((k) => ids.some((id) => k.getKeys(id).length > 0));
  if (!key) return { ok: false, reason: `signed by OpenPGP key ${keyId ?? '(no key id)'}, which is not in gpg_keys`, ...(keyId ? { keyId } : {}) };
  const created = signature.packets[0]?.created ?? null;
  try {
    const message = await lib.createMessage({ binary: payload });
    // At the signature's own time: a good signature by a key valid then.
    const res = await lib.verify({ message, signature, verificationKeys: [key], format: 'binary', date: created ?? now, expectSigned: true });
    await res.signatures[0]!.verified;
  } catch (err) {
    return { ok: false, reason: `bad OpenPGP signature by key ${keyId}: ${oneLine(err)}`, ...(keyId ? { keyId } : {}) };
  }
  // And now: revoked or expired since, it no longer vouches for anything.
  const signingKeys = key.getKeys(ids[0]);
  const stillValid = await Promise.all(signingKeys.map((k) => (k === key ? key.verifyPrimaryKey(now) : key.getSigningKey(k.getKeyID(), now)).then(() => true, (e: unknown) => oneLine(e))));
  if (!stillValid.includes(true)) {
    const why = stillValid.find((v) => v !== true) ?? 'not valid';
    return { ok: false, reason: `OpenPGP key ${keyId} is no longer valid (${why})`, ...(keyId ? { keyId } : {}) };
  }
  return { ok: true, keyId: keyId!, fingerprint: key.getFingerprint().toUpperCase(), userIds: key.getUserIDs() };
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}
