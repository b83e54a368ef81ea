/**
 * Durations, one grammar for agent.yaml, registry files and flags: a bare
 * number of seconds (`90`, `1.5`), or one or more numbers with a unit
 * (`500ms`, `90s`, `30m`, `1.5h`, `1h30m`, `1d`).
 */
export const DURATION_RE = /^\s*(?:\d+(?:\.\d+)?|(?:\d+(?:\.\d+)?(?:ms|[smhd]))+)\s*$/;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds, or null when `text` is not a duration. */
export function parseDuration(text: string): number | null {
  if (!DURATION_RE.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|[smhd])?/g)) total += Number(m[1]) * UNIT_MS[m[2] ?? 's']!;
  return total;
}

/** Milliseconds of a duration (a number is seconds); NaN when it is not one. */
export function durationMs(value: number | string): number {
  if (typeof value === 'number') return value * 1000;
  return parseDuration(value) ?? NaN;
}

/** `1h30m` from milliseconds, for messages (whole seconds; below a second, ms). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let s = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    if (s >= n) {
      parts.push(`${Math.floor(s / n)}${unit}`);
      s %= n;
    }
  }
  return parts.join('');
}
