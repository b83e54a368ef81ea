/**
 * Unified diffs of rendered templates, for `plan`. Lines are compared with
 * Myers' O(ND) algorithm (An O(ND) Difference Algorithm and Its Variations,
 * 1986), which finds a shortest edit script, so a one-line change in a long
 * config is one `-`/`+` pair, as `git diff` would show it.
 */

type Op = { t: ' ' | '-' | '+'; line: string };

/** Bounds the work on two very different texts: past it the diff is "replace everything". */
const MAX_EDIT_DISTANCE = 4000;

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function editScript(a: readonly string[], b: readonly string[]): Op[] {
  const n = a.length;
  const m = b.length;
  const max = Math.min(n + m, MAX_EDIT_DISTANCE);
  const v = new Map<number, number>([[1, 0]]);
  const trace: Array<Map<number, number>> = [];
  let found = false;
  outer: for (let d = 0; d <= max; d++) {
    trace.push(new Map(v));
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && (v.get(k - 1) ?? -1) < (v.get(k + 1) ?? -1)) ? (v.get(k + 1) ?? 0) : (v.get(k - 1) ?? 0) + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v.set(k, x);
      if (x >= n && y >= m) {
        found = true;
        break outer;
      }
    }
  }
  if (!found) return [...a.map((line) => ({ t: '-' as const, line })), ...b.map((line) => ({ t: '+' as const, line }))];
  // Walk back through the saved frontiers.
  const ops: Op[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && (vd.get(k - 1) ?? -1) < (vd.get(k + 1) ?? -1)) ? k + 1 : k - 1;
    const prevX = vd.get(prevK) ?? 0;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ t: ' ', line: a[--x]! });
      y--;
    }
    if (d > 0) {
      if (x === prevX) ops.push({ t: '+', line: b[--y]! });
      else ops.push({ t: '-', line: a[--x]! });
    }
  }
  return ops.reverse();
}

/**
 * `diff -u` of two texts, with `context` lines around each change; empty when
 * they are equal. `null` on a side means the file does not exist there.
 */
export function unifiedDiff(before: string | null, after: string | null, names: { a: string; b: string }, context = 3): string {
  if (before === after) return '';
  const a = splitLines(before ?? '');
  const b = splitLines(after ?? '');
  const ops = editScript(a, b);
  const out: string[] = [`--- ${before === null ? '/dev/null' : names.a}`, `+++ ${after === null ? '/dev/null' : names.b}`];
  const changed = ops.map((o) => o.t !== ' ');
  let i = 0;
  // Line numbers (1-based) in a and b of ops[i].
  const aAt: number[] = [];
  const bAt: number[] = [];
  for (let ai = 1, bi = 1, j = 0; j < ops.length; j++) {
    aAt.push(ai);
    bAt.push(bi);
    if (ops[j]!.t !== '+') ai++;
    if (ops[j]!.t !== '-') bi++;
  }
  while (i < ops.length) {
    if (!changed[i]) {
      i++;
      continue;
    }
    const start = Math.max(0, i - context);
    let end = i;
    // Extend while the next change is within 2*context lines.
    for (let j = i; j < ops.length; j++) {
      if (changed[j]) end = j;
      else if (j - end > 2 * context) break;
    }
    const stop = Math.min(ops.length, end + context + 1);
    const hunk = ops.slice(start, stop);
    const aLen = hunk.filter((o) => o.t !== '+').length;
    const bLen = hunk.filter((o) => o.t !== '-').length;
    const aStart = aLen === 0 ? aAt[start]! - 1 : aAt[start]!;
    const bStart = bLen === 0 ? bAt[start]! - 1 : bAt[start]!;
    out.push(`@@ -${aStart},${aLen} +${bStart},${bLen} @@`);
    for (const o of hunk) out.push(`${o.t}${o.line}`);
    i = stop;
  }
  const lastA = before !== null && before !== '' && !before.endsWith('\n');
  const lastB = after !== null && after !== '' && !after.endsWith('\n');
  if (lastA !== lastB) out.push('\\ No newline at end of file (one side)');
  return `${out.join('\n')}\n`;
}
