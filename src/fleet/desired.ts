/**
 * The one answer to "what should this site run at this commit": the site's
 * file merged over its groups, its selection, then the version each selected
 * model gets and that version's files. The reconcile planner
 * (reconcile/pass.ts), `plan`, `render` and `sites` all ask this function, so
 * a preview can never disagree with what the agent then does.
 *
 * Pure: the registry is already loaded, nothing is read. What chooses a
 * version is a list of sources in precedence order (pin, override, current);
 * a staged rollout (DESIGN.md "Staged rollouts": a site in a reached wave
 * gets `version`, every other site `from`) slots in between override and
 * current as one more source, fed from the registry at the same commit.
 */
import { desiredModels, resolveSite, type DesiredReason, type ResolvedSite } from '../registry/desired.ts';
import type { Registry } from '../registry/load.ts';
import type { VersionScheme } from '../registry/schema.ts';
import type { VersionFile } from '../store/index.ts';

export interface DesiredModelState {
  model: string;
  /** The version this site should run (after overrides and pins). */
  version: string;
  /** The registry's current_version. */
  declared: string;
  reason: DesiredReason;
  /** The model's version scheme; null when its versions follow none (then nothing compares as newer). */
  scheme: VersionScheme | null;
  /** Files of the desired version; undefined when the registry does not publish it (a stale pin, an override to nothing). */
  files?: readonly VersionFile[];
}

export interface SiteDesiredState {
  site: ResolvedSite;
  /** Every model the site selects, sorted by name. */
  models: DesiredModelState[];
}

export interface SiteLocalInputs {
  /** Break-glass pins of the site's store (pins.json): known only on the site. */
  pins?: Record<string, string>;
}

/**
 * Throws NotFoundError for an undeclared site or a selected model the
 * registry does not declare, ValidationError for a broken `extends`.
 */
export function desiredState(registry: Registry, site: string, local: SiteLocalInputs = {}): SiteDesiredState {
  const resolved = resolveSite(registry, site);
  const chosen = desiredModels(registry, resolved, local.pins ?? {});
  const models = [...chosen.values()].map((d): DesiredModelState => {
    const info = registry.models.get(d.model)!;
    const manifest = info.versions.get(d.version)?.manifest;
    return {
      ...d,
      scheme: info.scheme,
      files: manifest?.files.map((f) => ({ name: f.name, oid: f.sha256, size: f.size, ...(f.chunks ? { chunks: { oid: f.chunks.oid, size: f.chunks.size } } : {}) })),
    };
  });
  return { site: resolved, models };
}
