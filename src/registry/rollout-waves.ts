/**
 * Which version a site gets while a staged rollout of its model is in
 * progress. Pure: the rollout file, the site's name and labels and the sites
 * that run the model in, a version out, so every reader of the registry
 * (desiredModels, and through it fleet/desiredState: the agent's planner,
 * `plan`, `sites`; validate; the controller) decides the same way from Git
 * alone. It lives with the registry's other resolution rules (desired.ts),
 * below every room that reads it.
 *
 * - A site in a reached wave gets `version`; every other site gets `from`.
 * - Waves are cumulative: reaching wave 2 keeps wave 1's sites on `version`.
 * - `percent` ranks the candidate sites by sha256(model, version, site) and
 *   takes the first ceil(percent × n / 100): a re-run picks the same sites,
 *   and a small fleet still gets at least one site per wave.
 * - A halted rollout sends everyone back to `from`; a done one (the last
 *   step before the file goes away) sends everyone to `version`.
 */
import { createHash } from 'node:crypto';
import type { RolloutFile, WaveSelector } from './schema.ts';

export interface RolloutSite {
  name: string;
  labels: Record<string, string>;
}

/** The site's place in the rollout. */
export interface RolloutResolution {
  version: string;
  /** The first wave that selects the site, if any does. */
  wave?: string;
  /** Whether that wave has been reached (and the rollout is not halted). */
  reached: boolean;
}

/** How many waves are reached, in order: halted = none, done = all. */
export function reachedWaveCount(r: Pick<RolloutFile, 'waves' | 'state'>): number {
  if (r.state.status === 'halted') return 0;
  if (r.state.status === 'done') return r.waves.length;
  const i = r.waves.findIndex((w) => w.name === r.state.wave);
  // An unknown wave is a validation error; a reader that still gets here reaches nothing.
  return i < 0 ? 0 : i + 1;
}

/** A stable number in [0, 2^32) per (model, version, site). */
export function rolloutRank(model: string, version: string, site: string): number {
  return createHash('sha256').update(`${model}\0${version}\0${site}`).digest().readUInt32BE(0);
}

function labelsMatch(want: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!want) return true;
  return Object.entries(want).every(([k, v]) => Object.hasOwn(labels, k) && labels[k] === v);
}

/** The sites of `population` one wave's selector picks (on its own, not cumulative). */
export function selectWave(r: Pick<RolloutFile, 'model' | 'version'>, sel: WaveSelector, population: readonly RolloutSite[]): Set<string> {
  if (sel === 'all') return new Set(population.map((s) => s.name));
  const matching = population.filter((s) => labelsMatch(sel.labels, s.labels));
  if (sel.percent === undefined) return new Set(matching.map((s) => s.name));
  const ranked = matching
    .map((s) => ({ name: s.name, rank: rolloutRank(r.model, r.version, s.name) }))
    .sort((a, b) => a.rank - b.rank || (a.name < b.name ? -1 : 1));
  const n = Math.ceil((sel.percent * ranked.length) / 100);
  return new Set(ranked.slice(0, n).map((s) => s.name));
}

/** Per wave, in order, the sites it adds (a site belongs to the first wave that selects it). */
export function waveMembers(r: Pick<RolloutFile, 'model' | 'version' | 'waves'>, population: readonly RolloutSite[]): string[][] {
  const taken = new Set<string>();
  return r.waves.map((w) => {
    const adds = [...selectWave(r, w.sites, population)].filter((s) => !taken.has(s)).sort();
    for (const s of adds) taken.add(s);
    return adds;
  });
}

/** The version `site` runs under the rollout; `population` is every site that runs the model (the site included). */
export function resolveRollout(r: RolloutFile, site: string, population: readonly RolloutSite[]): RolloutResolution {
  const members = waveMembers(r, population);
  const idx = members.findIndex((m) => m.includes(site));
  const reached = idx >= 0 && idx < reachedWaveCount(r);
  return { version: reached ? r.version : r.from, wave: idx >= 0 ? r.waves[idx]!.name : undefined, reached };
}

/** The sites on `version` under the rollout as it stands (every reached wave). */
export function reachedSites(r: RolloutFile, population: readonly RolloutSite[]): string[] {
  return waveMembers(r, population).slice(0, reachedWaveCount(r)).flat().sort();
}
