import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { ActionTokens, TokenTable, credentialsFrom, loadTokensFile, maySiteReport, roleAtLeast } from './auth.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('credentialsFrom', () => {
  test('Basic password with any user, the user alone with an empty password, Bearer', () => {
    expect(credentialsFrom(`Basic ${b64('x:s3cret')}`)).toEqual({ scheme: 'basic', secret: 's3cret' });
    expect(credentialsFrom(`basic ${b64('anyone:a:b')}`)).toEqual({ scheme: 'basic', secret: 'a:b' });
    expect(credentialsFrom(`Basic ${b64('tok:')}`)).toEqual({ scheme: 'basic', secret: 'tok' });
    expect(credentialsFrom('Bearer abc.def')).toEqual({ scheme: 'bearer', secret: 'abc.def' });
  });
  test('nothing usable', () => {
    for (const h of [undefined, '', 'Bearer', 'Digest abc', `Basic ${b64('nocolon')}`, `Basic ${b64(':')}`, 'Bearer a b']) expect(credentialsFrom(h)).toBeNull();
  });
});

describe('TokenTable', () => {
  const table = TokenTable.fromFile({
    tokens: [
      { name: 'ci', sha256: sha('pub'), role: 'publisher' },
      { name: 'beta', sha256: sha('site'), role: 'site' },
      { name: 'edge', sha256: sha('edge'), role: 'site', sites: ['a', 'b'] },
    ],
  });
  test('finds the token whose hash matches, and only that', () => {
    expect(table.authenticate('pub')).toEqual({ name: 'ci', role: 'publisher', sites: null });
    expect(table.authenticate('site')).toEqual({ name: 'beta', role: 'site', sites: ['beta'] });
    expect(table.authenticate('nope')).toBeNull();
    expect(table.authenticate(sha('pub'))).toBeNull();
  });
  test('roles and sites', () => {
    expect(roleAtLeast('admin', 'publisher')).toBe(true);
    expect(roleAtLeast('site', 'publisher')).toBe(false);
    const edge = table.authenticate('edge')!;
    expect(maySiteReport(edge, 'a')).toBe(true);
    expect(maySiteReport(edge, 'edge')).toBe(false);
    expect(maySiteReport(table.authenticate('pub')!, 'anything')).toBe(true);
  });
});

describe('loadTokensFile', () => {
  test('every problem with file:line:col', async () => {
    const f = join(tempDir(), 'tokens.yaml');
    writeFileSync(f, `tokens:\n  - {name: a, sha256: ${sha('1')}, role: admin}\n  - {name: a, sha256: ${sha('1')}, role: publisher, sites: [x]}\n  - {name: c, sha256: ${sha('3')}, role: site, extra: 1}\n`);
    await expect(loadTokensFile(f)).rejects.toThrow(/tokens\.yaml:4:\d+: .*unknown key "extra"/);
    writeFileSync(f, `tokens:\n  - {name: a, sha256: ${sha('1')}, role: admin}\n  - {name: a, sha256: ${sha('1')}, role: publisher, sites: [x]}\n`);
    const err = await loadTokensFile(f).catch((e: Error) => e);
    expect(String(err)).toMatch(/:3:\d+: tokens\[1\]\.name: duplicate token name "a"/);
    expect(String(err)).toMatch(/same secret is listed twice/);
    expect(String(err)).toMatch(/"sites" only applies to role site/);
    await expect(loadTokensFile(join(tempDir(), 'missing.yaml'))).rejects.toThrow(/cannot read tokens file .*ENOENT/);
  });
});

describe('ActionTokens', () => {
  test('valid only for its repo, oid and operation, until it expires', () => {
    let now = 1_000_000;
    const t = new ActionTokens(Buffer.alloc(32, 7), () => now);
    const grant = { repo: 'r', oid: 'a'.repeat(64), op: 'download' as const };
    const tok = t.mint(grant, 60);
    expect(ActionTokens.looksLikeOne(tok)).toBe(true);
    expect(t.check(tok, grant)).toBe(true);
    expect(t.check(tok, { ...grant, op: 'upload' })).toBe(false);
    expect(t.check(tok, { ...grant, repo: 'other' })).toBe(false);
    expect(t.check(tok, { ...grant, oid: 'b'.repeat(64) })).toBe(false);
    expect(new ActionTokens(Buffer.alloc(32, 8), () => now).check(tok, grant)).toBe(false);
    expect(t.check(`${tok}x`, grant)).toBe(false);
    now += 61_000;
    expect(t.check(tok, grant)).toBe(false);
  });

  test('an upload grant carries its size, and the size cannot be edited without breaking the signature', () => {
    const t = new ActionTokens(Buffer.alloc(32, 7));
    const want = { repo: 'r', oid: 'a'.repeat(64), op: 'upload' as const };
    const tok = t.mint({ ...want, size: 100 }, 60);
    expect(t.grant(tok, want)).toEqual({ ...want, size: 100 });
    const [payload, sig] = tok.slice('msa1.'.length).split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `msa1.${Buffer.from(JSON.stringify({ ...claims, s: 10 ** 12 })).toString('base64url')}.${sig}`;
    expect(t.grant(forged, want)).toBeNull();
  });
});
