import { describe, expect, it } from 'vitest';
import { splitCommit } from './commit-object.ts';

const T = 'a'.repeat(40);
const P = 'b'.repeat(40);
const head = `tree ${T}\nparent ${P}\nauthor A <a@x> 1700000000 +0000\ncommitter C <c@example.com> 1700000001 +0100\n`;
const sig = 'gpgsig -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n -----END SSH SIGNATURE-----\n';
const bytes = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

describe('splitCommit', () => {
  it('takes the gpgsig header out, keeps every other byte (mergetag included) as the payload', () => {
    const mergetag = 'mergetag object cccc\n type commit\n tag v1\n';
    const c = splitCommit(bytes(`${head}${mergetag}${sig}\nmessage\n`));
    expect(text(c.payload)).toBe(`${head}${mergetag}\nmessage\n`);
    expect(c.signature).toBe('-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n');
    expect(c).toMatchObject({ tree: T, parents: [P], committerEmail: 'c@example.com', committerTime: 1700000001 });
  });

  it('does not read a "gpgsig" in the message as a signature', () => {
    const c = splitCommit(bytes(`${head}\n${sig}`));
    expect(c.signature).toBeUndefined();
    expect(text(c.payload)).toBe(`${head}\n${sig}`);
  });

  it('refuses two signatures, a missing tree first, and a malformed committer', () => {
    expect(() => splitCommit(bytes(`${head}${sig}${sig}\nm\n`))).toThrow('more than one gpgsig header');
    expect(() => splitCommit(bytes(`parent ${P}\ntree ${T}\ncommitter C <c@x> 1 +0000\n\nm\n`))).toThrow('does not start with a tree');
    expect(() => splitCommit(bytes(`tree ${T}\ncommitter C c@x\n\nm\n`))).toThrow('malformed committer');
    expect(() => splitCommit(bytes(`tree ${T}\ncommitter C <c@x> 1 +0000\n`))).toThrow('no end of headers');
  });
});
