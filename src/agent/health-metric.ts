/**
 * Asking Prometheus (or anything speaking its HTTP API) for a metric gate's
 * value: one instant query, bounded in time and size, its answer turned into
 * a gate sample by src/gate. What the value means is decided there.
 */
import { gateVerdict, type GateSample } from '../gate/metric-gate.ts';
import { sampleFromAnswer } from '../gate/prometheus.ts';
import type { MetricGateSpec } from '../registry/schema.ts';
import { durationMs } from '../util/duration.ts';
import { redactUrl } from '../util/redact.ts';
import type { Clock } from './clock.ts';
import { requestErrorMessage } from './net-error.ts';

const MAX_ANSWER_BYTES = 1 << 20;
// A query never takes longer than this, nor longer than its period.
const MAX_QUERY_MS = 10_000;

export function queryUrl(spec: Pick<MetricGateSpec, 'url' | 'query'>): string {
  const u = new URL(spec.url);
  u.searchParams.set('query', spec.query);
  return u.toString();
}

/** One instant query; never throws: a failure is a miss saying why. */
export async function queryMetric(fetchImpl: typeof fetch, spec: MetricGateSpec, clock: Clock, signal?: AbortSignal): Promise<GateSample> {
  const at = clock.now();
  const timeoutMs = Math.min(MAX_QUERY_MS, Math.max(250, durationMs(spec.every)));
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const where = redactUrl(spec.url);
  try {
    const res = await fetchImpl(queryUrl(spec), { method: 'GET', headers: { accept: 'application/json' }, signal: combined, redirect: 'manual' });
    const text = await readBounded(res);
    if (text === undefined) return { at, ok: false, error: `GET ${where}: the answer is larger than ${MAX_ANSWER_BYTES} bytes` };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { at, ok: false, error: `GET ${where} answered ${res.status} with no JSON` };
    }
    // Prometheus answers 400/422/503 with {status: "error", error}: say that, not just the status code.
    const sample = sampleFromAnswer(body, at);
    if (!sample.ok) return { at, ok: false, error: `GET ${where} answered ${res.status}: ${sample.error}` };
    return res.ok ? sample : { at, ok: false, error: `GET ${where} answered ${res.status}` };
  } catch (err) {
    const why = timeout.aborted ? `timed out after ${timeoutMs} ms` : requestErrorMessage(err);
    return { at, ok: false, error: `GET ${where}: ${why}` };
  }
}

async function readBounded(res: Response): Promise<string | undefined> {
  if (!res.body) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Uint8Array).byteLength;
    if (size > MAX_ANSWER_BYTES) return undefined;
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A gate judged on one answer, for the health check after a rollback (which
 * is for the record only: nothing more is switched). Soaks after a switch
 * are watched by soak.ts, not here.
 */
export async function checkMetricOnce(
  spec: MetricGateSpec, deps: { fetch: typeof fetch; clock: Clock; signal?: AbortSignal },
): Promise<{ ok: boolean; tries: number; ms: number; message: string }> {
  const started = deps.clock.now();
  const sample = await queryMetric(deps.fetch, spec, deps.clock, deps.signal);
  const v = gateVerdict({ min: spec.min, max: spec.max, forMs: 1, everyMs: 1 }, [sample], sample.at, sample.at + 1);
  const ms = deps.clock.now() - started;
  if (v.verdict === 'pass') return { ok: true, tries: 1, ms, message: 'healthy' };
  return { ok: false, tries: 1, ms, message: v.verdict === 'fail' ? `metric gate: ${v.reason}` : `metric gate: no answer (${sample.ok ? 'no data' : sample.error})` };
}
