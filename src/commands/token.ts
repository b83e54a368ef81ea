/**
 * `modelsync token add|list|revoke`: manage the hub's tokens file. A new
 * secret is printed once and only its sha256 is written; the hub re-reads
 * the file when it changes, so no restart is needed. The file is rewritten
 * atomically (mode 0600) with its comments kept.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isMap, isSeq, parseDocument, YAMLMap } from 'yaml';
import { ConfigError, UsageError } from '../errors.ts';
import { loadTokensFile } from '../hub/auth.ts';
import { NAME_RE, Role } from '../registry/schema.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';

export interface TokenOptions {
  action?: 'add' | 'list' | 'revoke';
  name?: string;
  role?: string;
  sites?: string;
  tokens?: string;
  json?: boolean;
}

interface Entry {
  name: string;
  role: string;
  sites?: string[];
}

export async function tokenCommand(opts: TokenOptions, ctx: CommandContext): Promise<number> {
  const action = opts.action ?? 'list';
  if (!opts.tokens) throw new UsageError(`token ${action} needs --tokens <file> (the hub's --tokens file)`);
  const file = resolve(ctx.cwd, opts.tokens);
  if (action === 'list') return list(file, opts, ctx);
  if (!opts.name) throw new UsageError(`token ${action} needs a token name`);
  if (action === 'revoke') return revoke(file, opts.name, ctx);
  return add(file, opts.name, opts, ctx);
}

async function readDoc(file: string): Promise<{ text: string | null }> {
  try {
    const text = await readFile(file, 'utf8');
    // The hub's own reader checks it, so a broken file is reported as the hub would, file:line:col.
    await loadTokensFile(file);
    return { text };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err instanceof ConfigError && /ENOENT/.test(err.message))) return { text: null };
    throw err;
  }
}

function entries(text: string | null): Entry[] {
  if (text === null) return [];
  const v = parseDocument(text).toJS() as { tokens?: Entry[] } | null;
  return v?.tokens ?? [];
}

async function list(file: string, opts: TokenOptions, ctx: CommandContext): Promise<number> {
  const { text } = await readDoc(file);
  const all = entries(text).map((e) => ({ name: e.name, role: e.role, ...(e.sites ? { sites: e.sites } : {}) }));
  if (opts.json) printJson(ctx, { tokens: all });
  else if (all.length === 0) ctx.out(`no tokens in ${file}`);
  else {
    const w = Math.max(4, ...all.map((e) => e.name.length));
    ctx.out(`${'name'.padEnd(w)}  role       sites`);
    for (const e of all) ctx.out(`${e.name.padEnd(w)}  ${e.role.padEnd(9)}  ${e.role === 'site' ? (e.sites ?? [e.name]).join(',') : 'any'}`);
  }
  return EXIT.ok;
}

async function add(file: string, name: string, opts: TokenOptions, ctx: CommandContext): Promise<number> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)) throw new UsageError(`token name ${JSON.stringify(name)}: letters, digits, "_", "-" and "." (at most 64)`);
  const role = Role.safeParse(opts.role ?? '');
  if (!role.success) throw new UsageError(`token add needs --role site, publisher or admin${opts.role ? ` (got ${JSON.stringify(opts.role)})` : ''}`);
  const sites = opts.sites?.split(',').map((s) => s.trim()).filter(Boolean);
  if (sites && role.data !== 'site') throw new UsageError('--sites only applies to --role site (publisher and admin tokens may report for any site)');
  for (const s of sites ?? []) if (!NAME_RE.test(s)) throw new UsageError(`--sites: ${JSON.stringify(s)} is not a site name`);
  const { text } = await readDoc(file);
  if (entries(text).some((e) => e.name === name)) throw new UsageError(`a token named "${name}" is already in ${file}; revoke it first or pick another name`);
  const secret = `mst_${randomBytes(32).toString('base64url')}`;
  const sha256 = createHash('sha256').update(secret, 'utf8').digest('hex');
  const doc = parseDocument(text ?? '# modelsync hub tokens: only the sha256 of each secret is stored (modelsync token add|list|revoke)\ntokens: []\n');
  let seq = doc.get('tokens');
  if (!isSeq(seq)) {
    doc.set('tokens', doc.createNode([]));
    seq = doc.get('tokens');
  }
  const node = doc.createNode({ name, sha256, role: role.data, ...(sites ? { sites } : {}) }) as YAMLMap;
  node.flow = true;
  if (isSeq(seq)) {
    seq.flow = false;
    seq.items.push(node);
  }
  await writeFileAtomic(file, doc.toString({ lineWidth: 0 }), 0o600);
  if (opts.json) printJson(ctx, { name, role: role.data, ...(sites ? { sites } : {}), secret, sha256 });
  else {
    ctx.out(`added token "${name}" (role ${role.data}${role.data === 'site' ? `, sites ${(sites ?? [name]).join(',')}` : ''}) to ${file}; a hub serving this file (serve --tokens) picks it up within seconds, no restart.`);
    ctx.out('Its secret, shown only this once (the file keeps only its sha256):');
    ctx.out(secret);
  }
  return EXIT.ok;
}

async function revoke(file: string, name: string, ctx: CommandContext): Promise<number> {
  const { text } = await readDoc(file);
  if (text === null) throw new UsageError(`${file} does not exist`);
  const doc = parseDocument(text);
  const seq = doc.get('tokens');
  const i = isSeq(seq) ? seq.items.findIndex((it) => isMap(it) && it.get('name') === name) : -1;
  if (!isSeq(seq) || i < 0) throw new UsageError(`no token named "${name}" in ${file} (see modelsync token list)`);
  seq.items.splice(i, 1);
  await writeFileAtomic(file, doc.toString({ lineWidth: 0 }), 0o600);
  ctx.out(`revoked token "${name}": a running hub refuses it from now on, open event streams included.`);
  return EXIT.ok;
}
