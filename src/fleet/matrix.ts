/**
 * `modelsync sites`: site × model → the version the registry declares for
 * that site, from the same desiredState the agents use, with where each
 * value comes from (current_version, an override in the site file, or one
 * inherited from a group) and which file chose the site's model selection.
 * Pins are not here: they live in each site's store.
 */
import { errorMessage } from '../errors.ts';
import { siteChain } from '../registry/desired.ts';
import type { Registry, SiteDoc } from '../registry/load.ts';
import { desiredState } from './desired.ts';

export interface MatrixCell {
  version: string;
  /** current: the model's current_version; override: a site or group override (see `from`). */
  source: 'current' | 'override';
  /** The file that set the override: the site itself (its name) or a group (`groups/outposts`). */
  from?: string;
  /** Not published in the registry (the site would report an error). */
  unpublished?: boolean;
}

export interface MatrixRow {
  site: string;
  labels: Record<string, string>;
  /** The file whose `models:` selects the site's models; undefined when none does (every model). */
  selectionFrom?: string;
  /** By model; absent: the site does not run it. */
  models: Record<string, MatrixCell>;
  error?: string;
}

export interface SiteMatrix {
  models: string[];
  sites: MatrixRow[];
}

export function siteMatrix(registry: Registry): SiteMatrix {
  const models = [...registry.models.values()].filter((m) => m.entry).map((m) => m.name).sort();
  const sites: MatrixRow[] = [];
  for (const site of [...registry.sites.keys()].sort()) {
    let state;
    let chain: SiteDoc[];
    try {
      state = desiredState(registry, site);
      chain = siteChain(registry, site);
    } catch (err) {
      sites.push({ site, labels: {}, models: {}, error: errorMessage(err) });
      continue;
    }
    // Later in the chain wins, as in the merge itself.
    const lastSetting = (has: (data: SiteDoc['data']) => boolean): string | undefined => chain.findLast((d) => has(d.data))?.name;
    const cells: Record<string, MatrixCell> = {};
    for (const m of state.models) {
      const cell: MatrixCell = { version: m.version, source: m.reason === 'override' ? 'override' : 'current' };
      if (m.reason === 'override') cell.from = lastSetting((d) => d.overrides !== undefined && Object.hasOwn(d.overrides, m.model));
      if (m.files === undefined) cell.unpublished = true;
      cells[m.model] = cell;
    }
    sites.push({ site, labels: state.site.labels, selectionFrom: lastSetting((d) => d.models !== undefined), models: cells });
  }
  return { models, sites };
}
