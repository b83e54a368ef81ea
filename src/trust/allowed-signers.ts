/**
 * ssh-keygen's allowed_signers file (ssh-keygen(1), "ALLOWED SIGNERS"):
 *
 *   principals [options] keytype base64-key [comment]
 *
 * `principals` is a pattern-list (`*`, `?`, `!negation`, comma-separated);
 * options are `namespaces="git,..."`, `valid-after=`, `valid-before=` and
 * `cert-authority`. Parsing is pure and reports every bad line with its
 * number; a file with one bad line is refused as a whole, because silently
 * dropping a line could drop a revocation-by-omission the operator meant.
 */

export interface AllowedSigner {
  line: number;
  principals: string;
  namespaces?: string;
  /** Seconds since the epoch. */
  validAfter?: number;
  validBefore?: number;
  certAuthority: boolean;
  keyType: string;
  /** The public key blob, as in the key's base64 field. */
  key: Buffer;
}

export interface ParsedAllowedSigners {
  signers: AllowedSigner[];
  problems: Array<{ line: number; message: string }>;
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|[a-z0-9-]+-cert-v01@openssh\.com)$/;

export function parseAllowedSigners(text: string): ParsedAllowedSigners {
  const signers: AllowedSigner[] = [];
  const problems: ParsedAllowedSigners['problems'] = [];
  text.split('\n').forEach((rawLine, i) => {
    const lineNo = i + 1;
    const line = rawLine.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = tokens(line);
    if (!fields) return problems.push({ line: lineNo, message: 'unbalanced quotes' });
    const [principals, ...rest] = fields;
    let opts: string | undefined;
    // A field shaped like a key type is one (an unknown type is reported as such, not as an option).
    if (rest.length > 0 && !KEY_TYPE.test(rest[0]!) && !/^(ssh|ecdsa|sk)-[\w.@-]+$/.test(rest[0]!)) opts = rest.shift();
    const [keyType, b64] = rest;
    if (!principals || !keyType || !b64) return problems.push({ line: lineNo, message: 'expected: principals [options] keytype base64-key [comment]' });
    if (!KEY_TYPE.test(keyType)) return problems.push({ line: lineNo, message: `unknown key type ${JSON.stringify(keyType.slice(0, 40))}` });
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return problems.push({ line: lineNo, message: 'the key is not base64' });
    const key = Buffer.from(b64, 'base64');
    // The blob names its own type first: a line whose field and blob disagree is a copy-paste error.
    if (key.length < 4 || key.subarray(4, 4 + key.readUInt32BE(0)).toString('latin1') !== keyType) {
      return problems.push({ line: lineNo, message: `the key blob is not a ${keyType} key` });
    }
    const s: AllowedSigner = { line: lineNo, principals: unquote(principals), certAuthority: false, keyType, key };
    for (const o of opts ? splitOptions(opts) : []) {
      const eq = o.indexOf('=');
      const name = (eq === -1 ? o : o.slice(0, eq)).toLowerCase();
      const value = eq === -1 ? undefined : unquote(o.slice(eq + 1));
      if (name === 'cert-authority' && value === undefined) s.certAuthority = true;
      else if (name === 'namespaces' && value !== undefined) s.namespaces = value;
      else if ((name === 'valid-after' || name === 'valid-before') && value !== undefined) {
        const t = parseSshTime(value);
        if (t === undefined) return problems.push({ line: lineNo, message: `${name}: ${JSON.stringify(value)} is not YYYYMMDD[HHMM[SS]][Z]` });
        if (name === 'valid-after') s.validAfter = t;
        else s.validBefore = t;
      } else return problems.push({ line: lineNo, message: `unknown option ${JSON.stringify(o.slice(0, 40))}` });
    }
    signers.push(s);
  });
  return { signers, problems };
}

/** OpenSSH's match_pattern_list: the last matching negation wins outright; otherwise any positive match. Case-sensitive, as ssh-keygen is for principals. */
export function matchPatternList(subject: string, list: string): boolean {
  let matched = false;
  for (const raw of list.split(',')) {
    const neg = raw.startsWith('!');
    const pat = neg ? raw.slice(1) : raw;
    if (globMatch(subject, pat)) {
      if (neg) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatch(s: string, pat: string): boolean {
  const re = new RegExp(`^${[...pat].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('')}$`, 's');
  return re.test(s);
}

/** YYYYMMDD[HHMM[SS]][Z]: UTC with Z, the site's local time without, as ssh-keygen reads it. */
export function parseSshTime(v: string): number | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(Z)?$/.exec(v);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return undefined;
  const ms = m[7] ? Date.UTC(y, mo - 1, d, h, mi, se) : new Date(y, mo - 1, d, h, mi, se).getTime();
  return Math.floor(ms / 1000);
}

/** Whitespace-separated fields; a double-quoted field may hold spaces. */
function tokens(line: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let inField = false;
  for (const c of line) {
    if (c === '"') quoted = !quoted;
    if (!quoted && /\s/.test(c)) {
      if (inField) out.push(cur);
      cur = '';
      inField = false;
      continue;
    }
    cur += c;
    inField = true;
  }
  if (quoted) return undefined;
  if (inField) out.push(cur);
  return out;
}

function splitOptions(opts: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of opts) {
    if (c === '"') quoted = !quoted;
    if (c === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.filter((o) => o !== '');
}

function unquote(v: string): string {
  return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
}
