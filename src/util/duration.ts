/**
 * Durations in config: a number of seconds, or a number with a unit
 * (`90s`, `30m`, `1.5h`, `500ms`).
 */
export const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a duration (a bare number is seconds); NaN when it is not one. */
export function durationMs(value: number | string): number {
  if (typeof value === 'number') return value * 1000;
  const m = DURATION_RE.exec(value);
  return m ? Number(m[1]) * UNIT_MS[m[2] ?? 's']! : NaN;
}
