/**
 * What a site's store says about itself, for `modelsync status --store` and
 * the agent's /status: per model declared / desired / active / pinned /
 * conflict / degraded, the last pass and how stale the registry view is.
 * Read-only: no lock, nothing written.
 */
import { existsSync } from 'node:fs';
import { NotFoundError } from '../errors.ts';
import { StoreLayout, listModels, lockOwner, observeModel, readPins, readState, type PassRecord } from '../store/index.ts';

export interface ModelStatus {
  model: string;
  declared?: string;
  desired?: string;
  active?: string;
  previous?: string;
  versions: string[];
  pinned?: string;
  lastApplied?: string;
  conflict?: { active: string; declared: string; since: string };
  degraded?: { version: string; since: string; reason: string };
  /** `current` differs from what the last pass left (changed by hand since). */
  drift?: string;
  /** The site no longer selects this model: kept as it is, not managed (`gc --unmanaged` removes it). */
  unmanaged?: { since?: string };
  /** Switched by a pass that stopped before its services were health-checked: the agent's next pass checks it. */
  verifying?: { version: string; since: string; by?: 'reconcile' };
}

export interface StoreStatus {
  store: string;
  site?: string;
  registry?: string;
  branch?: string;
  appliedCommit?: string;
  attemptedCommit?: string;
  lastPass?: PassRecord;
  lastSuccessAt?: string;
  lastFetchAt?: string;
  /** Seconds since the registry was last reached (null: never). */
  staleSeconds: number | null;
  locked?: { pid: number; since: string; purpose: string; alive: boolean };
  models: ModelStatus[];
  warnings: string[];
}

export async function storeStatus(root: string, now = new Date()): Promise<StoreStatus> {
  const layout = new StoreLayout(root);
  if (!existsSync(layout.root)) throw new NotFoundError(`store ${root} does not exist`, { store: root });
  const { state, warning } = await readState(layout);
  const pins = (await readPins(layout)).pins;
  const names = new Set([...(await listModels(layout)), ...Object.keys(state.models), ...Object.keys(pins)]);
  const models: ModelStatus[] = [];
  for (const model of [...names].sort()) {
    const obs = await observeModel(layout, model).catch(() => ({ model, versions: [] as string[], current: undefined, previous: undefined }));
    const s = state.models[model];
    const deg = state.degraded.find((d) => d.model === model);
    const ms: ModelStatus = {
      model,
      declared: s?.declared,
      desired: s?.desired,
      active: obs.current,
      previous: obs.previous,
      versions: obs.versions,
      pinned: pins[model]?.version,
      lastApplied: s?.lastApplied,
    };
    if (s?.conflict) ms.conflict = s.conflict;
    if (state.selected && !state.selected.includes(model) && obs.versions.length > 0) ms.unmanaged = s?.unmanagedSince ? { since: s.unmanagedSince } : {};
    if (deg) ms.degraded = { version: deg.version, since: deg.since, reason: deg.reason };
    const owed = state.verifying.find((v) => v.model === model);
    if (owed) ms.verifying = { version: owed.version, since: owed.since, ...(owed.by ? { by: owed.by } : {}) };
    if (s?.active !== undefined && obs.current !== s.active) ms.drift = `current is ${obs.current ?? 'missing'} but the last pass left ${s.active}`;
    models.push(ms);
  }
  const owner = await lockOwner(layout.lockFile);
  const lastOk = [...state.history].reverse().find((h) => h.status !== 'failed');
  return {
    store: root,
    site: state.site,
    registry: state.registry,
    branch: state.branch,
    appliedCommit: state.appliedCommit,
    attemptedCommit: state.attemptedCommit,
    lastPass: state.history.at(-1),
    lastSuccessAt: lastOk?.at,
    lastFetchAt: state.lastFetchAt,
    staleSeconds: state.lastFetchAt ? Math.max(0, Math.round((now.getTime() - Date.parse(state.lastFetchAt)) / 1000)) : null,
    locked: owner ? { pid: owner.pid, since: owner.since, purpose: owner.purpose, alive: owner.alive } : undefined,
    models,
    warnings: warning ? [warning] : [],
  };
}
