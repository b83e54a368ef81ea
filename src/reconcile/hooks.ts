/**
 * How the agent plugs services, health checks and templates into a reconcile
 * pass. The one-shot `modelsync reconcile` runs without hooks (it only
 * manages files); `modelsync agent` passes hooks built from agent.yaml.
 */
import type { Registry } from '../registry/load.ts';
import type { ResolvedSite } from '../registry/desired.ts';
import type { RegistrySource } from '../registry/source.ts';
import type { DesiredInput } from './plan.ts';

/**
 * What the pass read: templates are rendered from the registry at this
 * commit. The desired state may come from the snapshot of an earlier pass at
 * the same commit (no manifest read); `loadRegistry` reads and validates the
 * whole registry at the commit only when something needs more than that.
 */
export interface PassInfo {
  commit: string;
  source: RegistrySource;
  site: ResolvedSite;
  /** Every model the site selects, with the version it should run and that version's files. */
  desired: readonly DesiredInput[];
  /** The whole registry at the commit (cached; valid only during the pass, under the store lock). */
  loadRegistry(): Promise<Registry>;
}
export interface ActivatedModel {
  model: string;
  /** The version now active. */
  version: string;
  /** The version active before this pass, if any. */
  from?: string;
  /** What `previous` named before this switch (a late verdict's rollback restores it). */
  previousBefore?: string;
  /** Absolute path of `<store>/models/<model>/current`. */
  currentDir: string;
}

/**
 * A verdict reached after the pass that switched, between passes: a metric
 * gate that failed while the switch soaked. The next pass switches `model`
 * back to `from` like an unhealthy switch of its own, if `version` is still
 * active and still what the site wants (a newer switch supersedes it).
 */
export interface LateVerdict {
  model: string;
  version: string;
  from?: string;
  previousBefore?: string;
  service: string;
  reason: string;
}

export interface UnhealthyService {
  service: string;
  models: string[];
  reason: string;
}

export interface ActivationHooks {
  /**
   * Optional: called once per pass that got as far as switching (whether or
   * not anything changed), before afterSwitch, with what the pass read.
   */
  onRegistry?(info: PassInfo): void;
  /**
   * Optional: called once at the end of every pass that got as far as
   * switching, after any rollback, still under the store lock (templates
   * whose inputs changed without a switch). Returns warnings for the result.
   */
  settle?(): Promise<{ warnings: string[] }>;
  /**
   * Called once per pass after `current` was switched for `changed` (never
   * empty). Restart or reload the services that use them, then health-check
   * those services. Return the ones that failed.
   */
  afterSwitch(changed: readonly ActivatedModel[]): Promise<{ unhealthy: UnhealthyService[] }>;
  /**
   * Called after the models of unhealthy services were switched back to the
   * version they ran before; restart those services again.
   */
  afterRollback(rolledBack: readonly ActivatedModel[]): Promise<void>;
  /** Optional: failed verdicts reached between passes, judged by this pass (see LateVerdict). */
  lateVerdicts?(): readonly LateVerdict[];
}
