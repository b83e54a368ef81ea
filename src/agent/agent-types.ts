/** The agent's public types: what it is built from, what a pass yields, and the /status document. */
import type { Logger } from '../log.ts';
import type { ReconcileOptions, ReconcileResult } from '../reconcile/index.ts';
import type { Clock } from './clock.ts';
import type { ServiceReport } from './hooks.ts';
import type { Trigger } from './queue.ts';
import type { Damage } from './selfheal.ts';
import type { RenderOutcome, TemplateEngine } from './templates.ts';

export const AGENT_VERSION = '0.1.0';

export interface AgentDeps {
  clock?: Clock;
  fetch?: typeof fetch;
  logger?: Logger;
  env?: NodeJS.ProcessEnv;
  random?: () => number;
  /** The pass (default: src/reconcile). */
  reconcile?: (opts: ReconcileOptions) => Promise<ReconcileResult>;
  templateEngine?: TemplateEngine;
  /** Retry after a failed pass: first delay and ceiling (default 2 s … 5 min). */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Hub event stream reconnect backoff (default 500 ms … 60 s). */
  eventsBackoffBaseMs?: number;
  eventsBackoffMaxMs?: number;
  /** Quiet period for file-watch triggers (default 250 ms). */
  watchDebounceMs?: number;
  selfHealDebounceMs?: number;
  /** Told about every finished pass (the demo and benchmarks time convergence with it). */
  onPass?(outcome: PassOutcome): void;
}

export interface PassOutcome {
  result: ReconcileResult;
  triggers: Trigger[];
  /** Clock times. */
  startedAt: number;
  finishedAt: number;
}

export type Health = 'Progressing' | 'Progressing (soak)' | 'Ready' | 'Conflict' | 'Stale' | 'Failed' | 'Degraded' | 'Stalled' | 'Waiting';

export interface Condition {
  type: 'Ready' | 'Degraded' | 'Conflict' | 'Stale' | 'HubConnected' | 'Stalled' | 'Waiting' | 'Progressing';
  status: boolean;
  reason: string;
  message: string;
  /** ISO time of the last change of status. */
  since: string;
}

/** The document served at /status and reported to the hub after every pass. */
export interface AgentStatus {
  site: string;
  agent: { version: string; pid: number; startedAt: string };
  registry: string;
  branch: string;
  health: Health;
  conditions: Condition[];
  phase: 'starting' | 'idle' | 'reconciling' | 'stopping' | 'stopped';
  commit: string | null;
  appliedCommit: string | null;
  lastPass: {
    startedAt: string;
    finishedAt: string;
    status: ReconcileResult['status'];
    durationMs: number;
    triggers: string[];
    changed: ReconcileResult['changed'];
    rolledBack: ReconcileResult['rolledBack'];
    conflicts: ReconcileResult['conflicts'];
    degraded: ReconcileResult['degraded'];
    errors: Array<{ code: string; message: string; model?: string }>;
    bytesFetched: number;
  } | null;
  lastSuccessAt: string | null;
  lastFetchAt: string | null;
  /** Seconds since the registry was last reached (null: never). */
  stalenessSeconds: number | null;
  staleAfterSeconds: number;
  schedule: string;
  nextScheduledAt: string | null;
  models: Array<{
    model: string;
    declared: string;
    desired: string;
    active: string | null;
    outcome: string;
    reason: string;
    detail: string;
    drift?: string;
    /** Switched to `active`, but its services' health verdict is owed (a check cut short by a stop): not yet in sync. */
    verdictOwed?: { version: string; since: string };
    /** Switched to `active`, healthy so far, and watched by a metric gate until `until` (or longer, overdue): not yet in sync. */
    soak?: { version: string; service: string; since: string; until: string; state: 'watching' | 'failed'; reason: string; overdue: boolean; last?: number };
  }>;
  /** Models in the store the site no longer selects: kept as they are, not managed. */
  unmanaged: ReconcileResult['unmanaged'];
  services: ServiceReport[];
  /**
   * Services whose `models:` name a model this site does not run (a typo, a model dropped from the site):
   * such a service is never restarted or health-checked for it, so the health gate does not cover it.
   */
  serviceProblems: Array<{ service: string; model: string; message: string }>;
  templates: Array<Pick<RenderOutcome, 'src' | 'dest' | 'status' | 'message'>>;
  selfHeal: { restored: number; recent: Damage[]; lastVerifyAt: string | null };
  hub: { url: string; connected: boolean; lastReportAt: string | null; lastReportError: string | null } | null;
  lastError: string | null;
}

export const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
