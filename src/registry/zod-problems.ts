import type { z } from 'zod';
import type { Problem } from '../errors.ts';
import type { YamlFile } from './yaml-file.ts';

/**
 * Turn a zod failure into positioned problems: one per issue, unknown keys
 * reported at the key itself so the editor jumps to the typo.
 */
export function zodProblems(yf: YamlFile, error: z.ZodError): Problem[] {
  const out: Problem[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(yf.problem([...path, key], `unknown key "${key}"${suggest(key)}`, { key: true }));
      continue;
    }
    if (issue.code === 'invalid_key') {
      out.push(yf.problem(path, `invalid key: ${issue.issues.map((i) => i.message).join('; ')}`, { key: true }));
      continue;
    }
    out.push(yf.problem(path, describe(issue, yf, path)));
  }
  return out;
}

function describe(issue: z.core.$ZodIssue, yf: YamlFile, path: Array<string | number>): string {
  const present = lookup(yf.value, path);
  // Whatever the schema's own wording (a union says "must be a string or …"), a key that is not there is missing.
  if (present === undefined && path.length > 0 && issue.code !== 'custom') {
    const key = path[path.length - 1];
    return typeof key === 'string' ? `required key "${key}" is missing` : 'required item is missing';
  }
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${typeName(present)}`;
  return issue.message;
}

function lookup(value: unknown, path: Array<string | number>): unknown {
  let cur = value;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[p];
  }
  return cur;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const KNOWN_KEYS = [
  'models', 'current_version', 'previous_version', 'description', 'version_scheme', 'name', 'version', 'framework', 'source',
  'date_deployed', 'training_metrics', 'files', 'sha256', 'size', 'chunks', 'oid', 'extends', 'labels', 'overrides', 'schedule',
  'retention', 'keep', 'bandwidth', 'limit_kbps', 'templates', 'src', 'dest',
  'rollout', 'waves', 'sites', 'percent', 'soak', 'halt', 'degraded', 'state', 'wave', 'since', 'status', 'reason', 'from', 'model',
  'windows', 'days', 'start', 'end', 'tz',
];

/**
 * " (did you mean "x"?)" for a typo within two edits of one of `candidates`
 * (default: the registry's keys), else "". Also used for template filters and tests.
 */
export function suggest(key: string, candidates: readonly string[] = KNOWN_KEYS): string {
  let best: string | undefined;
  let bestD = 3;
  for (const k of candidates) {
    const d = editDistance(key, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}
