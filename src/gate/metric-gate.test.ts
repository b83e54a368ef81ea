import { describe, expect, it } from 'vitest';
import { gateVerdict, seriesName, type GateSample, type MetricRule } from './metric-gate.ts';
import { sampleFromAnswer } from './prometheus.ts';

const rule: MetricRule = { min: 15, forMs: 10_000, everyMs: 1000 };
const T0 = 1_000_000;
const v = (at: number, ...values: number[]): GateSample => ({ at: T0 + at, ok: true, series: values.map((value, i) => ({ labels: { __name__: 'fps', camera: String(i) }, value })) });
const miss = (at: number, error = 'ECONNREFUSED'): GateSample => ({ at: T0 + at, ok: false, error });
const every = (n: number, f: (at: number) => GateSample): GateSample[] => Array.from({ length: n }, (_, i) => f((i + 1) * 1000));

describe('gateVerdict', () => {
  it('is pending before `for`, passes at `for` with every answer within bounds', () => {
    expect(gateVerdict(rule, every(5, (at) => v(at, 20)), T0, T0 + 5000)).toMatchObject({ verdict: 'pending', overdue: false, answered: 5 });
    const done = gateVerdict(rule, every(10, (at) => v(at, 20)), T0, T0 + 10_000);
    expect(done).toMatchObject({ verdict: 'pass', answered: 10, expected: 10, last: 20 });
    expect(done.reason).toBe('within bounds for 10s (10 of 10 queries answered, last 20)');
  });

  it('fails at once on one answer below min, naming the series and when', () => {
    const samples = [v(1000, 20), v(2000, 14.5), v(3000, 20)];
    const r = gateVerdict(rule, samples, T0, T0 + 3000);
    expect(r.verdict).toBe('fail');
    expect(r.reason).toBe('fps{camera="0"} = 14.5 < min 15 after 2s');
  });

  it('fails above max; a value equal to a bound passes', () => {
    const r2: MetricRule = { max: 0.05, forMs: 2000, everyMs: 1000 };
    expect(gateVerdict(r2, [v(1000, 0.05), v(2000, 0.05)], T0, T0 + 2000).verdict).toBe('pass');
    expect(gateVerdict(r2, [v(1000, 0.0501)], T0, T0 + 1000).reason).toMatch(/0\.0501 > max 0\.05/);
    expect(gateVerdict({ min: 15, forMs: 2000, everyMs: 1000 }, [v(1000, 15), v(2000, 15)], T0, T0 + 2000).verdict).toBe('pass');
  });

  it('with several series, every one must be within bounds', () => {
    const r = gateVerdict(rule, [v(1000, 30, 29, 3)], T0, T0 + 1000);
    expect(r.verdict).toBe('fail');
    expect(r.reason).toMatch(/^fps\{camera="2"\} = 3 < min 15/);
    // The lowest series is the one reported as "last".
    expect(gateVerdict(rule, [v(1000, 30, 16)], T0, T0 + 1000).last).toBe(16);
  });

  it('an empty answer and NaN are no data: they never fail and never count', () => {
    const empty: GateSample = { at: T0 + 1000, ok: true, series: [] };
    const nan = v(2000, NaN);
    const r = gateVerdict({ min: 15, forMs: 2000, everyMs: 1000 }, [empty, nan], T0, T0 + 2000);
    expect(r).toMatchObject({ verdict: 'pending', overdue: true, answered: 0 });
    expect(r.reason).toMatch(/only 0 of the 1 answers needed \(last miss: every series is NaN\)/);
    // A NaN series next to a real one: the real one decides.
    expect(gateVerdict({ min: 15, forMs: 1000, everyMs: 1000 }, [v(1000, NaN, 20)], T0, T0 + 1000).verdict).toBe('pass');
  });

  it('-Inf is below any min, +Inf above any max', () => {
    expect(gateVerdict(rule, [v(1000, -Infinity)], T0, T0 + 1000).verdict).toBe('fail');
    expect(gateVerdict({ max: 1e9, forMs: 1000, everyMs: 1000 }, [v(1000, Infinity)], T0, T0 + 1000).verdict).toBe('fail');
  });

  it('query failures are misses: never a failure; past `for` without half the answers it is overdue, not passed', () => {
    const samples = every(10, (at) => (at <= 6000 ? miss(at) : v(at, 20)));
    const r = gateVerdict(rule, samples, T0, T0 + 10_000);
    expect(r).toMatchObject({ verdict: 'pending', overdue: true, answered: 4, expected: 10 });
    expect(r.reason).toMatch(/only 4 of the 5 answers needed \(last miss: ECONNREFUSED\); keeps watching/);
    // One more answer (Prometheus is back): half the window answered, it passes.
    expect(gateVerdict(rule, [...samples, v(11_000, 20)], T0, T0 + 11_000).verdict).toBe('pass');
    // Never a pass on misses alone, however long.
    expect(gateVerdict(rule, every(100, (at) => miss(at)), T0, T0 + 100_000)).toMatchObject({ verdict: 'pending', overdue: true });
  });

  it('ignores samples taken before the gate started (an earlier soak of the same service)', () => {
    expect(gateVerdict(rule, [v(-500, 1), ...every(10, (at) => v(at, 20))], T0, T0 + 10_000).verdict).toBe('pass');
  });

  it('needs at least one answer when `every` equals `for`', () => {
    const r: MetricRule = { min: 1, forMs: 1000, everyMs: 1000 };
    expect(gateVerdict(r, [], T0, T0 + 1000)).toMatchObject({ verdict: 'pending', overdue: true, expected: 1 });
    expect(gateVerdict(r, [v(1000, 2)], T0, T0 + 1000).verdict).toBe('pass');
  });

  it('names series as PromQL does', () => {
    expect(seriesName({})).toBe('scalar');
    expect(seriesName({ __name__: 'fps', model: 'm', a: 'x' })).toBe('fps{a="x",model="m"}');
    expect(seriesName({ model: 'm' })).toBe('{model="m"}');
  });
});

describe('sampleFromAnswer (Prometheus instant-query answers)', () => {
  it('reads vectors and scalars, values as the API spells them', () => {
    const vec = sampleFromAnswer({ status: 'success', data: { resultType: 'vector', result: [
      { metric: { __name__: 'fps', model: 'm' }, value: [1, '17.5'] },
      { metric: { model: 'n' }, value: [1, 'NaN'] },
      { metric: {}, value: [1, '+Inf'] },
      { metric: {}, value: [1, '-Inf'] },
    ] } }, 5);
    expect(vec).toEqual({ at: 5, ok: true, series: [
      { labels: { __name__: 'fps', model: 'm' }, value: 17.5 },
      { labels: { model: 'n' }, value: NaN },
      { labels: {}, value: Infinity },
      { labels: {}, value: -Infinity },
    ] });
    expect(sampleFromAnswer({ status: 'success', data: { resultType: 'scalar', result: [1, '3'] } }, 5)).toEqual({ at: 5, ok: true, series: [{ labels: {}, value: 3 }] });
    expect(sampleFromAnswer({ status: 'success', data: { resultType: 'vector', result: [] } }, 5)).toEqual({ at: 5, ok: true, series: [] });
  });

  it('anything else is a miss saying what was wrong', () => {
    const err = (b: unknown): string => {
      const s = sampleFromAnswer(b, 0);
      return s.ok ? 'ok' : s.error;
    };
    expect(err({ status: 'error', errorType: 'bad_data', error: 'parse error at char 3' })).toBe('the query failed (status "error": parse error at char 3)');
    expect(err({ status: 'success', data: { resultType: 'matrix', result: [] } })).toMatch(/returns a "matrix", not an instant vector or scalar/);
    expect(err({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'lots'] }] } })).toMatch(/no \[time, "value"\] pair/);
    expect(err({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, 3] }] } })).toMatch(/no \[time, "value"\] pair/);
    expect(err('<html>')).toBe('the answer is not a JSON object');
    expect(err({ status: 'success', data: { resultType: 'vector', result: Array.from({ length: 1001 }, () => ({ metric: {}, value: [1, '1'] })) } })).toMatch(/1001 series \(at most 1000\): aggregate it/);
  });
});
