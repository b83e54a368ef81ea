/**
 * The metric gate's verdict: a pure function of the rule, the samples taken
 * since the gate started, and the time. The agent's soak after a switch and
 * the staged-rollout controller call this one function, so "healthy enough"
 * has one meaning everywhere.
 *
 * The rules (docs/agent.md, "metric:"):
 * - every series of an answer must be within [min, max]: a query naming
 *   several cameras fails when one of them collapses (aggregate in the query,
 *   `min(...)` or `avg(...)`, when one number is meant);
 * - one answer out of bounds fails the gate at once: the query does the
 *   smoothing (`avg_over_time(...[5m])`), not the gate;
 * - an empty answer and NaN are "no data", never a value: they neither fail
 *   nor count towards passing (`... or vector(0)` turns a missing series
 *   into a failing value when that is meant);
 * - a query that fails (unreachable, an error status, an answer that is not
 *   a Prometheus vector or scalar) is a miss: never a failure (a monitoring
 *   outage must not roll the fleet back), never a pass;
 * - the gate passes once `for` has elapsed and at least half of the queries
 *   the window holds (`for / every`) answered with data. Until then it is
 *   pending, past `for` "overdue" with the reason (the site keeps reporting
 *   Progressing (soak), so nothing passes silently).
 */
import { formatDuration } from '../util/duration.ts';

export interface MetricRule {
  min?: number;
  max?: number;
  forMs: number;
  everyMs: number;
}

export interface SeriesValue {
  /** Prometheus labels of the series ({} for a scalar). */
  labels: Record<string, string>;
  value: number;
}

/** One query's outcome: the series it answered, or why there is no answer. */
export type GateSample =
  | { at: number; ok: true; series: SeriesValue[] }
  | { at: number; ok: false; error: string };

export interface GateVerdict {
  verdict: 'pass' | 'fail' | 'pending';
  /** One line for a human: why it failed, what it waits for, or what passed. */
  reason: string;
  /** Queries that answered with data, all within bounds. */
  answered: number;
  /** Queries the window holds: the pass needs half of them answered. */
  expected: number;
  /** Past `for` without enough answers. */
  overdue: boolean;
  /** The last value seen (the lowest series when there are several), for /status. */
  last?: number;
}

/** `fps{model="m",camera="2"}`, or `scalar` for an unlabelled value. */
export function seriesName(labels: Record<string, string>): string {
  const { __name__: name, ...rest } = labels;
  const inner = Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',');
  if (!name && !inner) return 'scalar';
  return `${name ?? ''}${inner ? `{${inner}}` : ''}`;
}

const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : Number(n.toPrecision(6)).toString());

/** Why `value` breaks the rule, or undefined. +Inf and -Inf compare as numbers. */
function outOfBounds(rule: MetricRule, value: number): string | undefined {
  if (rule.min !== undefined && value < rule.min) return `${fmt(value)} < min ${fmt(rule.min)}`;
  if (rule.max !== undefined && value > rule.max) return `${fmt(value)} > max ${fmt(rule.max)}`;
  return undefined;
}

export function gateVerdict(rule: MetricRule, samples: readonly GateSample[], startedAt: number, now: number): GateVerdict {
  const expected = Math.max(1, Math.floor(rule.forMs / rule.everyMs));
  const needed = Math.ceil(expected / 2);
  let answered = 0;
  let last: number | undefined;
  let lastMiss = '';
  for (const s of samples) {
    if (s.at < startedAt) continue;
    if (!s.ok) {
      lastMiss = s.error;
      continue;
    }
    const numbers = s.series.filter((x) => !Number.isNaN(x.value));
    if (numbers.length === 0) {
      lastMiss = s.series.length ? 'every series is NaN' : 'the query returned no series';
      continue;
    }
    for (const x of numbers) {
      const why = outOfBounds(rule, x.value);
      if (why) {
        const at = formatDuration(s.at - startedAt);
        return { verdict: 'fail', reason: `${seriesName(x.labels)} = ${why} after ${at}`, answered, expected, overdue: false, last: x.value };
      }
    }
    answered++;
    last = Math.min(...numbers.map((x) => x.value));
  }
  const elapsed = now - startedAt;
  const base = { answered, expected, ...(last !== undefined ? { last } : {}) };
  const lastWords = last !== undefined ? `, last ${fmt(last)}` : '';
  if (elapsed < rule.forMs) {
    return { verdict: 'pending', reason: `soaking: ${formatDuration(elapsed)} of ${formatDuration(rule.forMs)}, ${answered} answer${answered === 1 ? '' : 's'} within bounds${lastWords}${lastMiss ? ` (last miss: ${lastMiss})` : ''}`, overdue: false, ...base };
  }
  if (answered >= needed) {
    return { verdict: 'pass', reason: `within bounds for ${formatDuration(rule.forMs)} (${answered} of ${expected} queries answered${lastWords})`, overdue: false, ...base };
  }
  return {
    verdict: 'pending', overdue: true, ...base,
    reason: `no verdict after ${formatDuration(elapsed)}: only ${answered} of the ${needed} answers needed${lastMiss ? ` (last miss: ${lastMiss})` : ''}; keeps watching`,
  };
}
