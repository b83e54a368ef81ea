import { describe, expect, test } from 'vitest';
import { parseRange } from './range.ts';

describe('parseRange', () => {
  test.each([
    [undefined, 100, { kind: 'full' }],
    ['bytes=0-9', 100, { kind: 'partial', start: 0, end: 9 }],
    ['bytes=90-', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=90-500', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-10', 100, { kind: 'partial', start: 90, end: 99 }],
    ['bytes=-500', 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes=100-', 100, { kind: 'unsatisfiable' }],
    ['bytes=100-200', 100, { kind: 'unsatisfiable' }],
    ['bytes=-0', 100, { kind: 'unsatisfiable' }],
    // Positions past any safe integer (RFC 9110 §14.1.2): the end is trimmed, a start past the end is 416.
    ['bytes=0-99999999999999999999999', 100, { kind: 'partial', start: 0, end: 99 }],
    [`bytes=0-${'9'.repeat(400)}`, 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes=99999999999999999999999-', 100, { kind: 'unsatisfiable' }],
    ['bytes=99999999999999999999999-99999999999999999999999', 100, { kind: 'unsatisfiable' }],
    ['bytes=-99999999999999999999999', 100, { kind: 'partial', start: 0, end: 99 }],
    ['bytes=0-', 0, { kind: 'unsatisfiable' }],
    // Ignored (served whole), as RFC 9110 allows: several ranges, other units, nonsense.
    ['bytes=0-1,5-6', 100, { kind: 'full' }],
    ['items=0-1', 100, { kind: 'full' }],
    ['bytes=5-2', 100, { kind: 'full' }],
    ['bytes=-', 100, { kind: 'full' }],
    ['bytes=a-b', 100, { kind: 'full' }],
  ])('%s of %i bytes', (header, size, want) => {
    expect(parseRange(header, size)).toEqual(want);
  });
});
