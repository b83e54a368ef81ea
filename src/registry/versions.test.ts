import { describe, expect, it } from 'vitest';
import { inferScheme, matchesScheme, sortVersions } from './versions.ts';

describe('version schemes', () => {
  it('orders dates by day, then by their .N suffix numerically', () => {
    expect(sortVersions(['2025-12-08.10', '2025-12-08', '2024-01-31', '2025-12-08.2', '2025-11-20'], 'date')).toEqual([
      '2024-01-31', '2025-11-20', '2025-12-08', '2025-12-08.2', '2025-12-08.10',
    ]);
  });

  it('orders semver by numbers, a release above its pre-releases, pre-releases by their identifiers', () => {
    expect(sortVersions(['1.10.0', '1.2.0', '1.2.0-rc.1', '1.2.0-alpha', '1.2.0-rc.10', '0.9.9', '1.2.0-rc.2'], 'semver')).toEqual([
      '0.9.9', '1.2.0-alpha', '1.2.0-rc.1', '1.2.0-rc.2', '1.2.0-rc.10', '1.2.0', '1.10.0',
    ]);
  });

  it('orders integers numerically, beyond what a double holds', () => {
    expect(sortVersions(['10', '9', '100000000000000000001', '100000000000000000000'], 'integer')).toEqual([
      '9', '10', '100000000000000000000', '100000000000000000001',
    ]);
  });

  it('checks each scheme strictly and infers the first that fits every version', () => {
    expect(matchesScheme('2025-13-01', 'date')).toBe(false);
    expect(matchesScheme('2025-12-00', 'date')).toBe(false);
    expect(matchesScheme('007', 'integer')).toBe(false);
    expect(matchesScheme('1.2', 'semver')).toBe(false);
    expect(matchesScheme('v1.2.3', 'semver')).toBe(false);
    expect(inferScheme(['2025-01-01', '2025-01-01.1'])).toBe('date');
    expect(inferScheme(['1', '2'])).toBe('integer');
    expect(inferScheme(['1.0.0', '2.0.0-rc.1'])).toBe('semver');
    expect(inferScheme(['1', '2025-01-01'])).toBeNull();
  });
});
