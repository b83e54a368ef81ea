/**
 * The metric gate as a health check after a rollback (one answer, for the
 * record). Soaks after a switch are watched by soak.ts; the query itself is
 * src/gate/query.ts, shared with the rollout controller.
 */
import { gateVerdict } from '../gate/metric-gate.ts';
import { queryMetric } from '../gate/query.ts';
import type { MetricGateSpec } from '../registry/schema.ts';
import type { Clock } from './clock.ts';

export { queryMetric, queryUrl } from '../gate/query.ts';

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
