/**
 * Every rollout in progress in a registry, with its waves and their sites:
 * for the hub's dashboard, `status --hub` and `rollout status`.
 */
import { modelPopulation } from '../registry/desired.ts';
import type { Registry } from '../registry/load.ts';
import { rolloutView, type RolloutView } from './rollout.ts';

export function rolloutViews(registry: Registry): RolloutView[] {
  return [...registry.rollouts.values()]
    .sort((a, b) => (a.model < b.model ? -1 : 1))
    .map((doc) => rolloutView(doc.data, modelPopulation(registry, doc.model)));
}
