import { describe, expect, test } from 'vitest';
import { parseCgiHeaders } from './git-http.ts';
import { ZERO_OID, diffRefs, repoNameProblem } from './repos.ts';

describe('repoNameProblem', () => {
  test.each(['registry', 'models-2', 'a.b_c', 'X'])('accepts %s', (n) => expect(repoNameProblem(n)).toBeNull());
  test.each(['', '.', '..', '.hidden', '-x', 'a/b', 'a..b', 'x.git', 'X.GIT', '%2e%2e', 'a b', 'a\u0000', 'é', 'a'.repeat(101)])('refuses %j', (n) =>
    expect(repoNameProblem(n)).not.toBeNull(),
  );
});

describe('diffRefs', () => {
  test('created, moved and deleted refs, unchanged ones left out', () => {
    const a = 'a'.repeat(40);
    const b = 'b'.repeat(40);
    const before = new Map([['refs/heads/main', a], ['refs/heads/old', a], ['refs/tags/v1', a]]);
    const after = new Map([['refs/heads/main', b], ['refs/heads/new', b], ['refs/tags/v1', a]]);
    expect(diffRefs(before, after)).toEqual([
      { ref: 'refs/heads/main', before: a, after: b },
      { ref: 'refs/heads/new', before: ZERO_OID, after: b },
      { ref: 'refs/heads/old', before: a, after: ZERO_OID },
    ]);
  });
});

describe('parseCgiHeaders', () => {
  test('Status becomes the status code; other headers pass, malformed names do not', () => {
    expect(parseCgiHeaders('Status: 404 Not Found\r\nContent-Type: text/plain\r\nBad Header: x\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT')).toEqual({
      status: 404,
      headers: { 'Content-Type': 'text/plain', Expires: 'Fri, 01 Jan 1980 00:00:00 GMT' },
    });
    expect(parseCgiHeaders('Content-Type: application/x-git-upload-pack-advertisement').status).toBe(200);
  });
});
