import { describe, expect, it } from 'vitest';
import { matchPatternList, parseAllowedSigners, parseSshTime } from './allowed-signers.ts';

// A real ed25519 public key blob (from ssh-keygen), and one line of each shape ssh-keygen(1) documents.
const KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAILXs8iH9ADw/Vw0jOaASoHg0xDR+IJFBp5jj+aSH6z7U';

describe('allowed_signers', () => {
  it('reads principals, quoted options with commas, and comments', () => {
    const { signers, problems } = parseAllowedSigners([
      '# release keys',
      '',
      `release@example.com ssh-ed25519 ${KEY} laptop`,
      `"*@example.com,!intern@example.com" namespaces="git,file",valid-after="20250101Z",valid-before=20300101 ssh-ed25519 ${KEY}`,
      `ca@example.com cert-authority ssh-ed25519 ${KEY}`,
    ].join('\n'));
    expect(problems).toEqual([]);
    expect(signers.map((s) => [s.line, s.principals, s.namespaces, s.certAuthority])).toEqual([
      [3, 'release@example.com', undefined, false],
      [4, '*@example.com,!intern@example.com', 'git,file', false],
      [5, 'ca@example.com', undefined, true],
    ]);
    expect(signers[1]!.validAfter).toBe(Date.UTC(2025, 0, 1) / 1000);
    expect(signers[1]!.validBefore).toBe(new Date(2030, 0, 1).getTime() / 1000);
  });

  it('names the line of every problem', () => {
    const { problems } = parseAllowedSigners([
      `a@x ssh-ed25519`,
      `a@x ssh-dss ${KEY}`,
      `a@x ecdsa-sha2-nistp256 ${KEY}`,
      `a@x valid-after=2025 ssh-ed25519 ${KEY}`,
      `a@x no-touch-required ssh-ed25519 ${KEY}`,
      `"a@x ssh-ed25519 ${KEY}`,
    ].join('\n'));
    expect(problems).toEqual([
      { line: 1, message: 'expected: principals [options] keytype base64-key [comment]' },
      { line: 2, message: 'unknown key type "ssh-dss"' },
      { line: 3, message: 'the key blob is not a ecdsa-sha2-nistp256 key' },
      { line: 4, message: 'valid-after: "2025" is not YYYYMMDD[HHMM[SS]][Z]' },
      { line: 5, message: 'unknown option "no-touch-required"' },
      { line: 6, message: 'unbalanced quotes' },
    ]);
  });

  it('matches pattern-lists as OpenSSH does: wildcards, and a matching negation wins', () => {
    expect(matchPatternList('release@example.com', '*@example.com')).toBe(true);
    expect(matchPatternList('intern@example.com', '*@example.com,!intern@example.com')).toBe(false);
    expect(matchPatternList('a.b@example.com', 'a?b@example.com')).toBe(true);
    expect(matchPatternList('release@example.com.evil', '*@example.com')).toBe(false);
    expect(matchPatternList('Release@example.com', 'release@example.com')).toBe(false);
    expect(parseSshTime('20251301')).toBeUndefined();
  });
});
