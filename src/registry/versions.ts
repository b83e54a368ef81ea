import type { VersionScheme } from './schema.ts';

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})(?:\.(\d+))?$/;
const INT_RE = /^(0|[1-9]\d*)$/;
// semver.org's regex, without the leading "v" some tags carry.
const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export function matchesScheme(version: string, scheme: VersionScheme): boolean {
  switch (scheme) {
    case 'date': {
      const m = DATE_RE.exec(version);
      if (!m) return false;
      const month = Number(m[2]);
      const day = Number(m[3]);
      return month >= 1 && month <= 12 && day >= 1 && day <= 31;
    }
    case 'integer':
      return INT_RE.test(version);
    case 'semver':
      return SEMVER_RE.test(version);
  }
}

/** The scheme every version fits, tried in order date, integer, semver; null if none fits all. */
export function inferScheme(versions: readonly string[]): VersionScheme | null {
  for (const scheme of ['date', 'integer', 'semver'] as const) {
    if (versions.every((v) => matchesScheme(v, scheme))) return scheme;
  }
  return null;
}

export function schemeDescription(scheme: VersionScheme): string {
  switch (scheme) {
    case 'date':
      return 'YYYY-MM-DD with an optional .N suffix';
    case 'integer':
      return 'a non-negative integer without leading zeros';
    case 'semver':
      return 'semantic version MAJOR.MINOR.PATCH';
  }
}

/** Compare two versions of one scheme: negative when a is older than b. */
export function compareVersions(a: string, b: string, scheme: VersionScheme): number {
  switch (scheme) {
    case 'date': {
      const ma = DATE_RE.exec(a);
      const mb = DATE_RE.exec(b);
      if (!ma || !mb) return fallback(a, b);
      return compareTriple(ma, mb) || Number(ma[4] ?? 0) - Number(mb[4] ?? 0);
    }
    case 'integer': {
      if (!INT_RE.test(a) || !INT_RE.test(b)) return fallback(a, b);
      const d = BigInt(a) - BigInt(b);
      return d === 0n ? 0 : d < 0n ? -1 : 1;
    }
    case 'semver':
      return compareSemver(a, b);
  }
}

function compareSemver(a: string, b: string): number {
  const ma = SEMVER_RE.exec(a);
  const mb = SEMVER_RE.exec(b);
  if (!ma || !mb) return fallback(a, b);
  const d = compareTriple(ma, mb);
  if (d !== 0) return d;
  const pa = ma[4];
  const pb = mb[4];
  // A release ranks above its pre-releases.
  if (pa === undefined || pb === undefined) return pa === pb ? 0 : pa === undefined ? 1 : -1;
  const xa = pa.split('.');
  const xb = pb.split('.');
  for (let i = 0; i < Math.max(xa.length, xb.length); i++) {
    const ia = xa[i];
    const ib = xb[i];
    if (ia === undefined) return -1;
    if (ib === undefined) return 1;
    const na = /^\d+$/.test(ia);
    const nb = /^\d+$/.test(ib);
    if (na && nb) {
      const d = Number(ia) - Number(ib);
      if (d !== 0) return d;
    } else if (na !== nb) {
      return na ? -1 : 1;
    } else if (ia !== ib) {
      return ia < ib ? -1 : 1;
    }
  }
  return 0;
}

/** Groups 1-3 of two matches compared as numbers: year-month-day, or major.minor.patch. */
function compareTriple(ma: RegExpExecArray, mb: RegExpExecArray): number {
  for (let i = 1; i <= 3; i++) {
    const d = Number(ma[i]) - Number(mb[i]);
    if (d !== 0) return d;
  }
  return 0;
}

function fallback(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Sort versions oldest first. */
export function sortVersions(versions: Iterable<string>, scheme: VersionScheme): string[] {
  return [...versions].sort((a, b) => compareVersions(a, b, scheme));
}
