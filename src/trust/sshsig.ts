/**
 * SSH signatures (OpenSSH PROTOCOL.sshsig), as `git commit -S` with
 * gpg.format=ssh makes them through `ssh-keygen -Y sign -n git`.
 *
 * Verified with node:crypto alone: the format is a few length-prefixed
 * strings around an ordinary ed25519, RSA (PKCS#1 v1.5) or ECDSA signature,
 * so turning the SSH key blob into a KeyObject (via JWK) is all it takes and
 * no SSH library (nor a spawned ssh-keygen per commit) is needed. Pure.
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';

export type SshVerdict = { ok: true; key: Buffer; keyType: string; fingerprint: string } | { ok: false; reason: string; key?: Buffer; fingerprint?: string };

const MAGIC = Buffer.from('SSHSIG');
const BEGIN = '-----BEGIN SSH SIGNATURE-----';
const END = '-----END SSH SIGNATURE-----';

export function isSshSignature(armored: string): boolean {
  return armored.trimStart().startsWith(BEGIN);
}

/** `SHA256:...` as ssh-keygen -l prints it. */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  string(): Buffer {
    if (this.pos + 4 > this.buf.length) throw new Error('truncated');
    const n = this.buf.readUInt32BE(this.pos);
    if (this.pos + 4 + n > this.buf.length) throw new Error('truncated');
    const s = this.buf.subarray(this.pos + 4, this.pos + 4 + n);
    this.pos += 4 + n;
    return s;
  }
  uint32(): number {
    if (this.pos + 4 > this.buf.length) throw new Error('truncated');
    const n = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return n;
  }
  get done(): boolean {
    return this.pos === this.buf.length;
  }
}

const sshString = (b: Buffer | string): Buffer => {
  const v = typeof b === 'string' ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(v.length);
  return Buffer.concat([len, v]);
};

export interface ParsedSshSig {
  publicKey: Buffer;
  namespace: string;
  hashAlgorithm: string;
  sigFormat: string;
  sig: Buffer;
}

export function parseSshSignature(armored: string): ParsedSshSig {
  const text = armored.trim();
  if (!text.startsWith(BEGIN) || !text.endsWith(END)) throw new Error('not an armored SSH signature');
  const b64 = text.slice(BEGIN.length, -END.length).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new Error('the SSH signature is not base64');
  return parseBlob(Buffer.from(b64, 'base64'));
}

function parseBlob(blob: Buffer): ParsedSshSig {
  if (!blob.subarray(0, 6).equals(MAGIC)) throw new Error('the SSH signature lacks the SSHSIG preamble');
  const r = new Reader(blob.subarray(6));
  const version = r.uint32();
  if (version !== 1) throw new Error(`SSH signature version ${version} is not supported`);
  const publicKey = r.string();
  const namespace = r.string().toString('utf8');
  r.string(); // reserved
  const hashAlgorithm = r.string().toString('utf8');
  const sigBlob = new Reader(r.string());
  if (!r.done) throw new Error('trailing bytes after the SSH signature');
  const sigFormat = sigBlob.string().toString('utf8');
  const sig = sigBlob.string();
  return { publicKey, namespace, hashAlgorithm, sigFormat, sig };
}

/**
 * Verify an sshsig over `message` in `namespace`. Says which key signed; whether
 * that key is trusted is the caller's decision (allowed_signers).
 */
export function verifySshSignature(armored: string, message: Uint8Array, namespace: string): SshVerdict {
  let p: ParsedSshSig;
  try {
    p = parseSshSignature(armored);
  } catch (err) {
    return { ok: false, reason: `malformed SSH signature: ${(err as Error).message}` };
  }
  const fingerprint = sshFingerprint(p.publicKey);
  const fail = (reason: string): SshVerdict => ({ ok: false, reason, key: p.publicKey, fingerprint });
  if (p.namespace !== namespace) return fail(`SSH signature is for namespace ${JSON.stringify(p.namespace)}, not ${JSON.stringify(namespace)}`);
  if (p.hashAlgorithm !== 'sha256' && p.hashAlgorithm !== 'sha512') return fail(`SSH signature hash ${JSON.stringify(p.hashAlgorithm)} is not sha256 or sha512`);
  const signed = Buffer.concat([
    MAGIC, sshString(namespace), sshString(''), sshString(p.hashAlgorithm),
    sshString(createHash(p.hashAlgorithm).update(message).digest()),
  ]);
  let key: { type: string; obj: KeyObject; bits?: number; curveHash?: string; coordBytes?: number };
  try {
    key = publicKeyOf(p.publicKey);
  } catch (err) {
    return fail((err as Error).message);
  }
  let good: boolean;
  try {
    good = checkSig(key, p.sigFormat, p.sig, signed);
  } catch (err) {
    return fail((err as Error).message);
  }
  return good ? { ok: true, key: p.publicKey, keyType: key.type, fingerprint } : fail(`bad SSH signature by ${key.type} ${fingerprint}`);
}

function checkSig(key: ReturnType<typeof publicKeyOf>, format: string, sig: Buffer, data: Buffer): boolean {
  switch (key.type) {
    case 'ssh-ed25519':
      if (format !== 'ssh-ed25519') throw new Error(`signature format ${format} does not match an ed25519 key`);
      return verify(null, data, key.obj, sig);
    case 'ssh-rsa': {
      // ssh-rsa means SHA-1, which OpenSSH itself no longer accepts for signatures.
      const hash = format === 'rsa-sha2-256' ? 'sha256' : format === 'rsa-sha2-512' ? 'sha512' : undefined;
      if (!hash) throw new Error(`RSA signature format ${format} is not rsa-sha2-256 or rsa-sha2-512`);
      const len = Math.ceil(key.bits! / 8);
      if (sig.length > len) return false;
      // OpenSSH may send a signature shorter than the modulus (leading zeros dropped).
      return verify(hash, data, key.obj, Buffer.concat([Buffer.alloc(len - sig.length), sig]));
    }
    default: {
      if (format !== key.type) throw new Error(`signature format ${format} does not match a ${key.type} key`);
      const r = new Reader(sig);
      const rs = [r.string(), r.string()].map((mp) => {
        const v = mp[0] === 0 ? mp.subarray(1) : mp;
        if (v.length > key.coordBytes!) throw new Error('ECDSA signature value too long');
        return Buffer.concat([Buffer.alloc(key.coordBytes! - v.length), v]);
      });
      return verify(key.curveHash!, data, { key: key.obj, dsaEncoding: 'ieee-p1363' }, Buffer.concat(rs));
    }
  }
}

const CURVES: Record<string, { crv: string; hash: string; bytes: number }> = {
  nistp256: { crv: 'P-256', hash: 'sha256', bytes: 32 },
  nistp384: { crv: 'P-384', hash: 'sha384', bytes: 48 },
  nistp521: { crv: 'P-521', hash: 'sha512', bytes: 66 },
};

const b64url = (b: Buffer): string => b.toString('base64url');
const unsigned = (mp: Buffer): Buffer => (mp[0] === 0 ? mp.subarray(1) : mp);

function publicKeyOf(blob: Buffer): { type: string; obj: KeyObject; bits?: number; curveHash?: string; coordBytes?: number } {
  const r = new Reader(blob);
  const type = r.string().toString('latin1');
  if (type === 'ssh-ed25519') {
    const pk = r.string();
    if (pk.length !== 32) throw new Error('ed25519 key is not 32 bytes');
    return { type, obj: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pk) }, format: 'jwk' }) };
  }
  if (type === 'ssh-rsa') {
    const e = unsigned(r.string());
    const n = unsigned(r.string());
    if (n.length * 8 < 2048 - 8) throw new Error(`RSA key of ${n.length * 8} bits is too short (at least 2048)`);
    return { type, obj: createPublicKey({ key: { kty: 'RSA', n: b64url(n), e: b64url(e) }, format: 'jwk' }), bits: n.length * 8 };
  }
  const m = /^ecdsa-sha2-(nistp256|nistp384|nistp521)$/.exec(type);
  if (m) {
    const curve = CURVES[m[1]!]!;
    if (r.string().toString('latin1') !== m[1]) throw new Error('ECDSA key names another curve than its type');
    const q = r.string();
    if (q.length !== 1 + 2 * curve.bytes || q[0] !== 4) throw new Error('ECDSA key is not an uncompressed point');
    const x = q.subarray(1, 1 + curve.bytes);
    const y = q.subarray(1 + curve.bytes);
    return { type, obj: createPublicKey({ key: { kty: 'EC', crv: curve.crv, x: b64url(x), y: b64url(y) }, format: 'jwk' }), curveHash: curve.hash, coordBytes: curve.bytes };
  }
  if (type.startsWith('sk-')) throw new Error(`security-key signatures (${type}) are not supported`);
  if (type.endsWith('-cert-v01@openssh.com')) throw new Error(`certificate signatures (${type}) are not supported; list the key itself in allowed_signers`);
  throw new Error(`SSH key type ${JSON.stringify(type.slice(0, 40))} is not supported`);
}
