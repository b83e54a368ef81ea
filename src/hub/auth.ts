/**
 * Who is asking: tokens from the tokens file (only their sha256 is stored),
 * presented as the HTTP Basic password or a Bearer token, and the short-lived
 * action tokens the hub itself signs into LFS hrefs so a client never has to
 * send its long-lived secret to an object URL.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ConfigError, formatProblem } from '../errors.ts';
import { TokensFile, type Role } from '../registry/schema.ts';
import { parseYamlFile } from '../registry/yaml-file.ts';
import { zodProblems } from '../registry/zod-problems.ts';

export type { Role };

const RANK: Record<Role, number> = { site: 1, publisher: 2, admin: 3 };

export function roleAtLeast(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

export interface Identity {
  /** The token's name (never its secret); "loopback" without a tokens file. */
  name: string;
  role: Role;
  /** Sites a `site` token may report for; null means any. */
  sites: readonly string[] | null;
}

export function maySiteReport(id: Identity, site: string): boolean {
  if (roleAtLeast(id.role, 'publisher')) return true;
  return id.sites !== null && id.sites.includes(site);
}

/** The identity every loopback peer gets when the hub runs without a tokens file. */
export const LOOPBACK_IDENTITY: Identity = Object.freeze({ name: 'loopback', role: 'admin', sites: null });

interface TokenEntry extends Identity {
  hash: Buffer;
}

export class TokenTable {
  /** By the hex sha256 of the secret: one lookup per request, whatever the size of the fleet. */
  private readonly byHash: ReadonlyMap<string, TokenEntry>;

  private constructor(private readonly entries: readonly TokenEntry[]) {
    this.byHash = new Map(entries.map((e) => [e.hash.toString('hex'), e]));
  }

  static fromFile(file: TokensFile): TokenTable {
    return new TokenTable(
      file.tokens.map((t) => ({
        name: t.name,
        role: t.role,
        // A site token without `sites` reports for the site it is named after.
        sites: t.role === 'site' ? Object.freeze([...(t.sites ?? [t.name])]) : null,
        hash: Buffer.from(t.sha256, 'hex'),
      })),
    );
  }

  get size(): number {
    return this.entries.length;
  }

  /** Whether a token with this sha256 (hex) is still listed. */
  hasHash(hex: string): boolean {
    return this.byHash.has(hex.toLowerCase());
  }

  /**
   * The identity whose sha256 matches the secret, or null. The lookup is by
   * the secret's sha256, never by the secret: how long a miss takes depends
   * on hash bits a guesser cannot steer (finding a secret whose hash shares a
   * prefix with a listed one is a preimage search), so timing says nothing
   * about how close a guess came. Comparing every entry instead cost 1.6 s of
   * CPU per 10,000 requests with 1,000 site tokens (the fleet bench), the
   * hub's largest single cost. The match is confirmed in constant time.
   */
  authenticate(secret: string): Identity | null {
    const h = createHash('sha256').update(secret, 'utf8').digest();
    const found = this.byHash.get(h.toString('hex'));
    if (!found || !timingSafeEqual(h, found.hash)) return null;
    return { name: found.name, role: found.role, sites: found.sites };
  }
}

/** Read and validate a tokens file; every problem is reported as file:line:col. */
export async function loadTokensFile(path: string): Promise<TokenTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read tokens file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: path });
  }
  const yf = parseYamlFile(path, text);
  if (yf.syntaxProblems.length > 0) {
    throw new ConfigError(`tokens file is not valid YAML:\n${yf.syntaxProblems.map(formatProblem).join('\n')}`, { file: path, problems: yf.syntaxProblems });
  }
  const parsed = TokensFile.safeParse(yf.value);
  if (!parsed.success) {
    const problems = zodProblems(yf, parsed.error);
    throw new ConfigError(`tokens file is invalid:\n${problems.map(formatProblem).join('\n')}`, { file: path, problems });
  }
  const seenNames = new Set<string>();
  const seenHashes = new Set<string>();
  const problems = [];
  for (const [i, t] of parsed.data.tokens.entries()) {
    if (seenNames.has(t.name)) problems.push(yf.problem(['tokens', i, 'name'], `duplicate token name "${t.name}"`));
    if (seenHashes.has(t.sha256)) problems.push(yf.problem(['tokens', i, 'sha256'], 'the same secret is listed twice; each token needs its own secret'));
    if (t.sites && t.role !== 'site') problems.push(yf.problem(['tokens', i, 'sites'], `"sites" only applies to role site (this token is ${t.role} and may report for any site)`));
    seenNames.add(t.name);
    seenHashes.add(t.sha256);
  }
  if (problems.length > 0) throw new ConfigError(`tokens file is invalid:\n${problems.map(formatProblem).join('\n')}`, { file: path, problems });
  return TokenTable.fromFile(parsed.data);
}

export type Credentials = { scheme: 'basic' | 'bearer'; secret: string };

/**
 * The secret in an Authorization header: the Basic password (any user name;
 * with an empty password the user name, so `curl -u TOKEN:` works too) or a
 * Bearer token. Null when there is none or it is malformed.
 */
export function credentialsFrom(header: string | undefined): Credentials | null {
  if (!header) return null;
  const m = /^(\S+)\s+(\S+)\s*$/.exec(header);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'bearer') return { scheme: 'bearer', secret: m[2]! };
  if (scheme !== 'basic') return null;
  const decoded = Buffer.from(m[2]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  const secret = password || user;
  return secret ? { scheme: 'basic', secret } : null;
}

export type ActionOp = 'download' | 'upload';

export interface ActionGrant {
  repo: string;
  oid: string;
  op: ActionOp;
  /** For uploads: the size the batch request declared, which the upload must match. */
  size?: number;
}

const ACTION_PREFIX = 'msa1.';

/**
 * Signed, expiring grants for one operation on one object of one repo. The key
 * lives only in memory: a restart invalidates outstanding hrefs, which LFS
 * clients handle by asking the batch endpoint again.
 */
export class ActionTokens {
  private readonly key: Buffer;
  constructor(key: Buffer = randomBytes(32), private readonly now: () => number = Date.now) {
    this.key = key;
  }

  static looksLikeOne(secret: string): boolean {
    return secret.startsWith(ACTION_PREFIX);
  }

  mint(grant: ActionGrant, ttlSeconds: number): string {
    const claims = { r: grant.repo, o: grant.oid, op: grant.op, ...(grant.size === undefined ? {} : { s: grant.size }), exp: Math.floor(this.now() / 1000) + ttlSeconds };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${ACTION_PREFIX}${payload}.${this.sign(payload)}`;
  }

  /** Whether `token` is a valid, unexpired grant of exactly this operation. */
  check(token: string, want: Omit<ActionGrant, 'size'>): boolean {
    return this.grant(token, want) !== null;
  }

  /** The grant `token` carries if it is valid, unexpired and for exactly this operation; else null. */
  grant(token: string, want: Omit<ActionGrant, 'size'>): ActionGrant | null {
    if (!token.startsWith(ACTION_PREFIX)) return null;
    const [payload, sig, extra] = token.slice(ACTION_PREFIX.length).split('.');
    if (!payload || !sig || extra !== undefined) return null;
    const expected = Buffer.from(this.sign(payload));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
    let claims: { r?: unknown; o?: unknown; op?: unknown; s?: unknown; exp?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return null;
    }
    const ok = claims.r === want.repo && claims.o === want.oid && claims.op === want.op && typeof claims.exp === 'number' && claims.exp * 1000 > this.now();
    if (!ok) return null;
    return { ...want, ...(typeof claims.s === 'number' ? { size: claims.s } : {}) };
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
