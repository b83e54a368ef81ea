/**
 * A Prometheus HTTP API instant-query answer (`GET /api/v1/query`) turned
 * into a gate sample. The answer is untrusted: anything that is not a
 * success with a vector or a scalar is a miss naming what was wrong.
 * Values arrive as strings ("12.5", "NaN", "+Inf"), as the API sends them.
 */
import type { GateSample, SeriesValue } from './metric-gate.ts';

const MAX_SERIES = 1000;

function parseValue(v: unknown): number | undefined {
  // [ <unix time>, "<value>" ]
  if (!Array.isArray(v) || v.length !== 2 || typeof v[1] !== 'string') return undefined;
  const s = v[1].trim();
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  const n = Number(s);
  return s !== '' && Number.isFinite(n) ? n : undefined;
}

function labelsOf(metric: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!metric || typeof metric !== 'object' || Array.isArray(metric)) return out;
  for (const [k, v] of Object.entries(metric as Record<string, unknown>).slice(0, 64)) {
    if (typeof v === 'string') out[k.slice(0, 128)] = v.slice(0, 256);
  }
  return out;
}

/** The sample an answer body (parsed JSON) makes, taken at `at`. */
export function sampleFromAnswer(body: unknown, at: number): GateSample {
  const miss = (error: string): GateSample => ({ at, ok: false, error });
  if (!body || typeof body !== 'object') return miss('the answer is not a JSON object');
  const b = body as Record<string, unknown>;
  if (b.status !== 'success') {
    const why = typeof b.error === 'string' ? `: ${b.error.slice(0, 300)}` : '';
    return miss(`the query failed (status ${JSON.stringify(String(b.status).slice(0, 40))}${why})`);
  }
  const data = b.data as Record<string, unknown> | undefined;
  if (!data || typeof data !== 'object') return miss('the answer has no data');
  if (data.resultType === 'scalar') {
    const value = parseValue(data.result);
    return value === undefined ? miss('the scalar answer has no number') : { at, ok: true, series: [{ labels: {}, value }] };
  }
  if (data.resultType !== 'vector') return miss(`the query returns a ${JSON.stringify(String(data.resultType).slice(0, 20))}, not an instant vector or scalar`);
  if (!Array.isArray(data.result)) return miss('the vector answer has no result list');
  if (data.result.length > MAX_SERIES) return miss(`the query returns ${data.result.length} series (at most ${MAX_SERIES}): aggregate it`);
  const series: SeriesValue[] = [];
  for (const r of data.result) {
    const o = (r ?? {}) as Record<string, unknown>;
    const value = parseValue(o.value);
    if (value === undefined) return miss('a series of the answer has no [time, "value"] pair');
    series.push({ labels: labelsOf(o.metric), value });
  }
  return { at, ok: true, series };
}
