import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unifiedDiff } from './diff.ts';

const dir = mkdtempSync(join(tmpdir(), 'modelsync-diff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** GNU diff -u, without its two header lines (they carry file names and times). */
function gnu(a: string, b: string): string {
  writeFileSync(join(dir, 'a'), a);
  writeFileSync(join(dir, 'b'), b);
  const r = spawnSync('diff', ['-u', join(dir, 'a'), join(dir, 'b')], { encoding: 'utf8' });
  return r.stdout.split('\n').slice(2).join('\n');
}

/** A reproducible pseudo-random stream. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('unifiedDiff', () => {
  it('equal texts give no diff; a created file diffs from /dev/null', () => {
    expect(unifiedDiff('a\n', 'a\n', { a: 'a/x', b: 'b/x' })).toBe('');
    expect(unifiedDiff(null, 'x\ny\n', { a: 'a/x', b: 'b/x' })).toBe('--- /dev/null\n+++ b/x\n@@ -0,0 +1,2 @@\n+x\n+y\n');
  });

  it('hunks match GNU diff -u on random edits of config-like files', () => {
    const next = rng(42);
    for (let round = 0; round < 60; round++) {
      const lines = Array.from({ length: 5 + Math.floor(next() * 60) }, (_, i) => `key${i}: ${Math.floor(next() * 4)}`);
      const edited = [...lines];
      for (let e = Math.floor(next() * 6); e > 0; e--) {
        const at = Math.floor(next() * (edited.length + 1));
        const op = next();
        if (op < 0.33) edited.splice(at, 1);
        else if (op < 0.66) edited.splice(at, 0, `new${e}: ${round}`);
        else edited[Math.min(at, edited.length - 1)] = `changed${e}: ${round}`;
      }
      const a = `${lines.join('\n')}\n`;
      const b = `${edited.join('\n')}\n`;
      const ours = unifiedDiff(a, b, { a: 'a/x', b: 'b/x' });
      const theirs = gnu(a, b);
      if (a === b) expect(ours).toBe('');
      // Both are shortest edit scripts; where several exist they may pick different lines, so compare what a reader sees.
      else expect(counts(ours)).toEqual(counts(`--- a/x\n+++ b/x\n${theirs}`));
    }
  });
});

function counts(d: string): { minus: number; plus: number; hunks: number } {
  const body = d.split('\n').slice(2);
  return { minus: body.filter((l) => l.startsWith('-')).length, plus: body.filter((l) => l.startsWith('+')).length, hunks: body.filter((l) => l.startsWith('@@')).length };
}
