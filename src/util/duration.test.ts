import { describe, expect, it } from 'vitest';
import { durationMs, formatDuration, parseDuration } from './duration.ts';

describe('one duration grammar for agent.yaml, registry files and flags', () => {
  it('reads bare seconds, decimals, units and composites', () => {
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(durationMs(30)).toBe(30_000);
    expect(durationMs('30m')).toBe(1_800_000);
  });
  it('refuses what is not one', () => {
    for (const bad of ['', 'm', '1h30', '10 minutes', '-5s', '1w']) expect(parseDuration(bad), bad).toBeNull();
    expect(durationMs('soon')).toBeNaN();
  });
  it('formats back to the composite form', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(parseDuration(formatDuration(93_784_000))).toBe(93_784_000);
  });
});
