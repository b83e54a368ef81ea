import { describe, expect, it } from 'vitest';
import { allocate, emptyViewState, fallbackFor, markFailed, markServed, modelView, parseViewState, planPrune, servedVersion } from './numbering.ts';

const at = '2026-01-01T00:00:00Z';

describe('view numbering', () => {
  it('hands out growing numbers, rollbacks included, and never one a directory on disk still has', () => {
    let v = modelView(emptyViewState(), 'm');
    const a = allocate(v, '2025-01-01', at);
    const b = allocate(markServed(a.view, a.n), '2025-02-01', at);
    const c = allocate(markServed(b.view, b.n), '2025-01-01', at); // a revert: a new number
    expect([a.n, b.n, c.n]).toEqual([1, 2, 3]);
    // The state file lost, directories 1..7 still there: numbering goes on above them.
    v = modelView(emptyViewState(), 'm', [1, 2, 7]);
    expect(allocate(v, 'x', at).n).toBe(8);
  });

  it('falls back to the newest good N of a version that is on disk', () => {
    let v = modelView(emptyViewState(), 'm');
    for (const version of ['1', '2', '1', '3']) v = allocate(v, version, at).view;
    v = markFailed(markServed(v, 4), 4);
    expect(fallbackFor(v, '1', [1, 2, 3, 4])).toBe(3);
    expect(fallbackFor(v, '1', [1, 2, 4])).toBe(1);
    expect(fallbackFor(v, '3', [1, 2, 3, 4])).toBeUndefined(); // failed
    expect(fallbackFor(v, '2', [1, 3, 4])).toBeUndefined(); // gone
    expect(servedVersion(markServed(v, 2))).toBe('2');
  });

  it('keeps the served N and `keep` good ones below it; failed and unknown ones go', () => {
    let v = modelView(emptyViewState(), 'm');
    for (const version of ['1', '2', '3', '4']) v = allocate(v, version, at).view;
    v = markFailed(markServed(v, 3), 4);
    expect(planPrune(v, [1, 2, 3, 4, 9], 1)).toEqual({ keep: [2, 3], remove: [1, 4, 9] });
    expect(planPrune(v, [1, 2, 3, 4], 2)).toEqual({ keep: [1, 2, 3], remove: [4] });
  });

  it('reads its state file strictly, naming it', () => {
    expect(() => parseViewState('{', '/m/.modelsync-serving.json')).toThrow(/\/m\/\.modelsync-serving\.json: not valid JSON/);
    expect(() => parseViewState('{"format": 1, "models": {"m": {"next": 0, "entries": []}}}', 'f')).toThrow(/f: models\.m\.next/);
  });
});
