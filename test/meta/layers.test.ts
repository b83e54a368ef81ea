/**
 * The house's shape (cli → commands → agent/reconcile/hub/rollout → the
 * lower rooms → util): a lower room never imports a higher one, so each can
 * be read, tested and reused without what sits above it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const LOW = new Set(['util', 'lfs', 'store', 'registry', 'templates', 'trust', 'fleet', 'gate', 'serving', 'errors.ts', 'log.ts', 'paths.ts']);
const MID = new Set(['agent', 'reconcile', 'hub', 'rollout']);
const TOP = new Set(['commands', 'cli.ts']);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return files(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}
const roomOf = (file: string): string => relative(src, file).split(sep)[0]!;
const rank = (room: string): number => (LOW.has(room) ? 0 : MID.has(room) ? 1 : TOP.has(room) ? 2 : -1);

describe('layers', () => {
  it('every room of src/ has a place in the order', () => {
    const unknown = [...new Set(files(src).map(roomOf))].filter((r) => rank(r) < 0);
    expect(unknown).toEqual([]);
  });

  it('no room imports one above it', () => {
    const upward: string[] = [];
    for (const f of files(src)) {
      for (const m of readFileSync(f, 'utf8').matchAll(/(?:from|import\(?)\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = roomOf(resolve(dirname(f), m[1]!));
        if (rank(target) > rank(roomOf(f))) upward.push(`${relative(src, f)} → ${m[1]}`);
      }
    }
    expect(upward).toEqual([]);
  });
});
