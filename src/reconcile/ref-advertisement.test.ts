import { describe, expect, it } from 'vitest';
import { ensureAdvertisedHead } from './ref-advertisement.ts';

const pkt = (s: string): string => `${(Buffer.byteLength(s) + 4).toString(16).padStart(4, '0')}${s}`;
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const service = `${pkt('# service=git-upload-pack\n')}0000`;

describe('ensureAdvertisedHead', () => {
  it('adds a HEAD line after the first ref when a bare repo’s HEAD names a missing branch', () => {
    const body = `${service}${pkt(`${A} refs/heads/main\0multi_ack shallow\n`)}${pkt(`${B} refs/heads/dev\n`)}0000`;
    const out = ensureAdvertisedHead(Buffer.from(body)).toString();
    expect(out).toBe(`${service}${pkt(`${A} refs/heads/main\0multi_ack shallow\n`)}${pkt(`${A} HEAD\n`)}${pkt(`${B} refs/heads/dev\n`)}0000`);
  });

  it('leaves an advertisement with a HEAD, an empty repository and anything unparsable as they are', () => {
    const withHead = `${service}${pkt(`${A} HEAD\0caps symref=HEAD:refs/heads/main\n`)}${pkt(`${A} refs/heads/main\n`)}0000`;
    expect(ensureAdvertisedHead(Buffer.from(withHead)).toString()).toBe(withHead);
    const empty = `${service}${pkt(`${'0'.repeat(40)} capabilities^{}\0caps\n`)}0000`;
    expect(ensureAdvertisedHead(Buffer.from(empty)).toString()).toBe(empty);
    expect(ensureAdvertisedHead(Buffer.from('zzzz garbage')).toString()).toBe('zzzz garbage');
  });
});
