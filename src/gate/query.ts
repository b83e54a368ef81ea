/**
 * Asking Prometheus (or anything speaking its HTTP API) for a metric gate's
 * value: one instant query, bounded in time and size, its answer turned into
 * a gate sample (prometheus.ts). What the value means is metric-gate.ts's.
 * fetch and the clock are passed in: the agent's soak and the rollout
 * controller in the hub both ask through here.
 */
import type { MetricGateSpec } from '../registry/schema.ts';
import { durationMs } from '../util/duration.ts';
import { redactText, redactUrl } from '../util/redact.ts';
import { errorMessage } from '../errors.ts';
import type { GateSample, MetricRule } from './metric-gate.ts';
import { sampleFromAnswer } from './prometheus.ts';

/** Why a request failed: fetch says "fetch failed" and keeps the reason (ECONNREFUSED…) in its cause. */
function requestErrorMessage(err: unknown): string {
  const message = errorMessage(err);
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const why = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : undefined;
  return redactText(message === 'fetch failed' ? `cannot reach the server${why ? ` (${why})` : ''}` : message);
}

/** The rule of a gate as agent.yaml or a rollout file spells it. */
export const ruleOf = (g: MetricGateSpec): MetricRule => ({ min: g.min, max: g.max, forMs: durationMs(g.for), everyMs: durationMs(g.every) });

const MAX_ANSWER_BYTES = 1 << 20;
// A query never takes longer than this, nor longer than its period.
const MAX_QUERY_MS = 10_000;

export function queryUrl(spec: Pick<MetricGateSpec, 'url' | 'query'>): string {
  const u = new URL(spec.url);
  u.searchParams.set('query', spec.query);
  return u.toString();
}

/** One instant query; never throws: a failure is a miss saying why. */
export async function queryMetric(fetchImpl: typeof fetch, spec: MetricGateSpec, clock: { now(): number }, signal?: AbortSignal): Promise<GateSample> {
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
