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

/**
 * Durations as registry files write them (a wave's `soak`): one or more
 * whole numbers with a unit, `30s`, `30m`, `2h`, `1h30m`, `1d`, `500ms`.
 */
const REGISTRY_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export const REGISTRY_DURATION_RE = /^(?:\d+(?:ms|[smhd]))+$/;

/** Milliseconds, or null when `text` is not a duration. */
export function parseDuration(text: string): number | null {
  if (!REGISTRY_DURATION_RE.test(text)) return null;
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|[smhd])/g)) total += Number(m[1]) * REGISTRY_UNIT_MS[m[2]!]!;
  return total;
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
