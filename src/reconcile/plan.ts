/**
 * The planner: desired state + what the store holds + what the agent
 * remembers → one decision per model. Pure (no I/O, no clock), so every rule
 * is unit-tested with small builders (plan.test.ts).
 *
 * The conflict rule (DESIGN.md, "Conflicts"): the agent remembers the version
 * it last applied from the registry. If the active version differs from that
 * (someone changed it on the site, or a pin was lifted) and is newer than what
 * the registry wants, it is a conflict: left alone and reported, unless
 * `force`. A registry that goes back (a revert) is an authorised rollback.
 */
import type { DesiredModelState } from '../fleet/desired.ts';
import type { DesiredReason } from '../registry/desired.ts';
import type { VersionScheme } from '../registry/schema.ts';
import { compareVersions } from '../registry/versions.ts';
import type { ObjectRef, VersionFile } from '../store/index.ts';

/** What the site should run, from the shared resolution (fleet/desired.ts); `plan` previews the same values. */
export type DesiredInput = DesiredModelState;

export interface ObservedInput {
  /** Version `current` names, if any. */
  active?: string;
  /** The desired version's directory is complete (every file linked to its object). */
  desiredIntact: boolean;
  /** Objects of the desired version the store lacks. */
  missing: readonly ObjectRef[];
}

export interface RememberedInput {
  lastApplied?: string;
  /** Versions that failed their health check, with the commit they failed at. */
  degraded: ReadonlyArray<{ version: string; commit: string }>;
}

export type Action = 'none' | 'fetch' | 'activate' | 'conflict' | 'error';

export type PlanReason =
  | 'in-sync'
  | 'install'         // nothing active yet
  | 'upgrade'         // the site moves to a newer version
  | 'rollback'        // the registry went back (authorised)
  | 'pin'             // a local pin asks for it
  | 'forced'          // --force over a conflict
  | 'replace-drift'   // changed on the site, but older than declared: converge
  | 'repair'          // the active version's directory was damaged
  | 'degraded'        // failed its health check at this commit: not retried
  | 'conflict'
  | 'unpublished';    // the desired version does not exist in the registry

export interface ModelPlan {
  model: string;
  action: Action;
  reason: PlanReason;
  /** One line a person understands. */
  detail: string;
  desired: string;
  declared: string;
  desiredReason: DesiredReason;
  active?: string;
  lastApplied?: string;
  /** Objects to fetch (action fetch). */
  fetch: ObjectRef[];
  files: VersionFile[];
  /** Bytes to fetch. */
  bytes: number;
  /** A local decision differs from the registry (a pin). */
  drift?: string;
  /** Fetched and verified but not switched: outside the site's maintenance window (window.ts). */
  held?: 'window';
}

export interface PlanInput {
  commit: string;
  force: boolean;
  desired: readonly DesiredInput[];
  observed: ReadonlyMap<string, ObservedInput>;
  remembered: ReadonlyMap<string, RememberedInput>;
}

export interface Plan {
  commit: string;
  models: ModelPlan[];
  /** Distinct objects to fetch across models (shared content fetched once). */
  fetch: ObjectRef[];
  bytes: number;
  conflicts: ModelPlan[];
}

function newer(a: string, b: string, scheme: VersionScheme | null): boolean | null {
  if (!scheme) return null;
  return compareVersions(a, b, scheme) > 0;
}

export function planModel(d: DesiredInput, obs: ObservedInput, mem: RememberedInput, commit: string, force: boolean): ModelPlan {
  const base = {
    model: d.model,
    desired: d.version,
    declared: d.declared,
    desiredReason: d.reason,
    active: obs.active,
    lastApplied: mem.lastApplied,
    fetch: [] as ObjectRef[],
    files: [...(d.files ?? [])],
    bytes: 0,
    drift: d.reason === 'pin' && d.version !== d.declared ? `pinned to ${d.version} on this site (registry declares ${d.declared})` : undefined,
  };
  const decide = (action: Action, reason: PlanReason, detail: string): ModelPlan => {
    const plan: ModelPlan = { ...base, action, reason, detail };
    if (action === 'fetch') {
      plan.fetch = [...obs.missing];
      plan.bytes = obs.missing.reduce((n, o) => n + o.size, 0);
    }
    return plan;
  };
  const applyAs = (reason: PlanReason, detail: string): ModelPlan =>
    obs.missing.length > 0 ? decide('fetch', reason, detail) : decide('activate', reason, detail);

  if (!d.files) return decide('error', 'unpublished', `${d.version} is not published in the registry at ${commit.slice(0, 12)}`);

  const failed = mem.degraded.find((x) => x.version === d.version && x.commit === commit);
  if (obs.active === d.version) {
    if (!obs.desiredIntact) return applyAs('repair', `${d.version} is active but its directory is damaged; restoring it from verified objects`);
    // A first install that failed its health check had nothing to go back to: still degraded, not "in sync".
    if (failed) return decide('none', 'degraded', `${d.version} failed its health check at this commit and there was no earlier version to go back to; it stays active until the registry changes`);
    return decide('none', 'in-sync', `${d.version} is active`);
  }

  if (failed) {
    return decide('none', 'degraded', `${d.version} failed its health check at this commit; staying on ${obs.active ?? 'nothing'} until the registry changes`);
  }

  if (obs.active === undefined) return applyAs(d.reason === 'pin' ? 'pin' : 'install', `install ${d.version}`);
  if (d.reason === 'pin') return applyAs('pin', `${obs.active} → ${d.version} (local pin)`);

  const drifted = obs.active !== mem.lastApplied;
  const activeIsNewer = newer(obs.active, d.version, d.scheme);
  if (drifted && activeIsNewer !== false) {
    const why = mem.lastApplied === undefined
      ? `active ${obs.active} was not applied by this agent`
      : `active ${obs.active} differs from ${mem.lastApplied}, the version last applied from the registry`;
    const cmp = activeIsNewer === null ? 'cannot be ordered against' : 'is newer than';
    if (force) return applyAs('forced', `${why} and ${cmp} ${d.version}; --force applies ${d.version}`);
    return decide('conflict', 'conflict', `${why} and ${cmp} ${d.version}; left alone (use --force to apply ${d.version})`);
  }
  if (drifted) return applyAs('replace-drift', `active ${obs.active} was changed on the site and is older than ${d.version}; applying ${d.version}`);
  if (newer(d.version, obs.active, d.scheme) === false) return applyAs('rollback', `${obs.active} → ${d.version} (the registry went back)`);
  return applyAs('upgrade', `${obs.active} → ${d.version}`);
}

export function plan(input: PlanInput): Plan {
  const models = input.desired.map((d) =>
    planModel(
      d,
      input.observed.get(d.model) ?? { desiredIntact: false, missing: d.files ?? [] },
      input.remembered.get(d.model) ?? { degraded: [] },
      input.commit,
      input.force,
    ),
  );
  const seen = new Map<string, ObjectRef>();
  for (const m of models) for (const o of m.fetch) if (!seen.has(o.oid)) seen.set(o.oid, { oid: o.oid, size: o.size });
  const fetch = [...seen.values()];
  return {
    commit: input.commit,
    models,
    fetch,
    bytes: fetch.reduce((n, o) => n + o.size, 0),
    conflicts: models.filter((m) => m.action === 'conflict'),
  };
}
