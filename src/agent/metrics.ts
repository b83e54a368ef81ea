/**
 * The agent's Prometheus metrics, all named `modelsync_*`. Small enough that
 * a client library would be more code than the text format it produces.
 */
export interface AgentMetrics {
  /** Unix seconds of the last pass that fetched and applied without error. */
  lastSuccessTimestamp: number | null;
  /** Unix seconds of the last successful contact with the registry. */
  lastFetchTimestamp: number | null;
  lastPassDurationSeconds: number | null;
  passesTotal: Record<'ok' | 'error' | 'conflict' | 'degraded', number>;
  triggersTotal: Record<string, number>;
  coalescedTotal: number;
  bytesFetchedTotal: number;
  /** 429/503 answers from LFS servers and storage that were waited out (Retry-After). */
  throttledTotal: number;
  conflicts: number;
  degraded: boolean;
  /** With verify: on, whether the registry's tip is refused (null: verification off, not reported). */
  untrusted: boolean | null;
  stalenessSeconds: number | null;
  healsTotal: number;
  hubConnected: boolean;
  /** Per model: 1 when active equals declared. */
  models: Array<{ model: string; declared?: string; active?: string; inSync: boolean }>;
}

export function emptyMetrics(): AgentMetrics {
  return {
    lastSuccessTimestamp: null,
    lastFetchTimestamp: null,
    lastPassDurationSeconds: null,
    passesTotal: { ok: 0, error: 0, conflict: 0, degraded: 0 },
    triggersTotal: {},
    coalescedTotal: 0,
    bytesFetchedTotal: 0,
    throttledTotal: 0,
    conflicts: 0,
    degraded: false,
    untrusted: null,
    stalenessSeconds: null,
    healsTotal: 0,
    hubConnected: false,
    models: [],
  };
}

export function renderMetrics(site: string, m: AgentMetrics): string {
  const out: string[] = [];
  const s = `site="${label(site)}"`;
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: Array<[string, number | null]>): void => {
    const present = samples.filter(([, v]) => v !== null) as Array<[string, number]>;
    if (present.length === 0) return;
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of present) out.push(`${name}{${labels}} ${formatNumber(v)}`);
  };
  metric('modelsync_last_success_timestamp_seconds', 'gauge', 'Unix time of the last pass that applied without error.', [[s, m.lastSuccessTimestamp]]);
  metric('modelsync_last_fetch_timestamp_seconds', 'gauge', 'Unix time the registry was last reached.', [[s, m.lastFetchTimestamp]]);
  metric('modelsync_staleness_seconds', 'gauge', 'Seconds since the registry was last reached.', [[s, m.stalenessSeconds]]);
  metric('modelsync_pass_duration_seconds', 'gauge', 'Duration of the last reconcile pass.', [[s, m.lastPassDurationSeconds]]);
  metric('modelsync_passes_total', 'counter', 'Reconcile passes by outcome.', Object.entries(m.passesTotal).map(([k, v]) => [`${s},outcome="${k}"`, v]));
  metric('modelsync_triggers_total', 'counter', 'Pass requests by trigger.', Object.entries(m.triggersTotal).map(([k, v]) => [`${s},trigger="${label(k)}"`, v]));
  metric('modelsync_triggers_coalesced_total', 'counter', 'Triggers that joined an already queued pass.', [[s, m.coalescedTotal]]);
  metric('modelsync_bytes_fetched_total', 'counter', 'Bytes of model content downloaded.', [[s, m.bytesFetchedTotal]]);
  metric('modelsync_lfs_throttled_total', 'counter', 'LFS answers 429 or 503 (batch API or storage) waited out as Retry-After said, then retried.', [[s, m.throttledTotal]]);
  metric('modelsync_conflicts', 'gauge', 'Models whose active version is newer than declared and left alone.', [[s, m.conflicts]]);
  metric('modelsync_degraded', 'gauge', '1 when a version failed its health check and was rolled back.', [[s, m.degraded ? 1 : 0]]);
  metric('modelsync_untrusted', 'gauge', '1 while the registry tip is refused: not signed by a key this site trusts.', [[s, m.untrusted === null ? null : m.untrusted ? 1 : 0]]);
  metric('modelsync_heals_total', 'counter', 'Model files restored after being modified or deleted on the site.', [[s, m.healsTotal]]);
  metric('modelsync_hub_connected', 'gauge', '1 while the hub event stream is connected.', [[s, m.hubConnected ? 1 : 0]]);
  metric(
    'modelsync_model_in_sync', 'gauge', '1 when the active version of a model is the declared one.',
    m.models.map((x) => [`${s},model="${label(x.model)}",declared="${label(x.declared ?? '')}",active="${label(x.active ?? '')}"`, x.inSync ? 1 : 0]),
  );
  return `${out.join('\n')}\n`;
}

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}
