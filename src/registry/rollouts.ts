/**
 * registry/rollouts/<model>.yaml: a staged rollout in progress. Loaded and
 * checked here, every problem at the file and line that causes it; which
 * version a site gets under it is src/registry/rollout-waves.ts.
 */
import type { Problem } from '../errors.ts';
import { selectWave, type RolloutSite } from './rollout-waves.ts';
import { parseDuration } from '../util/duration.ts';
import { MODEL_REGISTRY_FILE, ROLLOUTS_DIR, ROLLOUTS_NAME, manifestPath } from './layout.ts';
import { NAME_RE, RolloutFile, type RolloutPolicy, type Wave } from './schema.ts';
import type { RegistrySource } from './source.ts';
import { parseYamlFile, type YamlFile, type YamlPath } from './yaml-file.ts';
import { zodProblems } from './zod-problems.ts';

export interface RolloutDoc {
  model: string;
  file: string;
  data: RolloutFile;
  yaml: YamlFile;
}

const at = (file: string, message: string): Problem => ({ file, line: 1, col: 1, path: '', message });

/** Every rollout file that passes its schema, by model; the others are reported. */
export async function loadRollouts(source: RegistrySource, problems: Problem[]): Promise<Map<string, RolloutDoc>> {
  const out = new Map<string, RolloutDoc>();
  for (const ent of (await source.list(ROLLOUTS_DIR)) ?? []) {
    const file = `${ROLLOUTS_DIR}/${ent.name}`;
    if (ent.type !== 'file') {
      problems.push(at(`${file}/`, `${ROLLOUTS_DIR}/ holds only <model>.yaml files`));
      continue;
    }
    if (ent.name === '.gitkeep' || ent.name.endsWith('.md')) continue;
    const model = ent.name.replace(/\.yaml$/, '');
    if (!ent.name.endsWith('.yaml') || !NAME_RE.test(model)) {
      problems.push(at(file, `rollout files are named <model>.yaml after a model (${JSON.stringify(ent.name)} is not)`));
      continue;
    }
    const text = await source.readText(file);
    if (text === null) continue;
    const yf = parseYamlFile(file, text);
    problems.push(...yf.syntaxProblems);
    if (yf.value === undefined) continue;
    const parsed = RolloutFile.safeParse(yf.value ?? {});
    if (!parsed.success) {
      problems.push(...zodProblems(yf, parsed.error));
      continue;
    }
    if (parsed.data.model !== model) {
      problems.push(yf.problem(['model'], `is ${JSON.stringify(parsed.data.model)} but the file is ${file} (the file is named after its model)`));
      continue;
    }
    out.set(model, { model, file, data: parsed.data, yaml: yf });
  }
  return out;
}

/** What the rollout checks need from the rest of the registry. */
export interface RolloutContext {
  /** Whether model_registry.yaml declares the model (undefined: the file did not load, so unknown). */
  declared(model: string): boolean | undefined;
  /** Whether the version's manifest exists (true also for a broken one, reported already). */
  published(model: string, version: string): boolean;
  /** The sites that run the model, with their merged labels. */
  population(model: string): RolloutSite[];
  /** Every label key some site or group uses. */
  labelKeys: ReadonlySet<string>;
}

export function checkRollouts(docs: ReadonlyMap<string, RolloutDoc>, ctx: RolloutContext, problems: Problem[]): void {
  for (const doc of docs.values()) {
    const { data, yaml } = doc;
    if (ctx.declared(data.model) === false) {
      problems.push(yaml.problem(['model'], `model ${JSON.stringify(data.model)} is not declared in ${MODEL_REGISTRY_FILE}`));
      continue;
    }
    for (const key of ['version', 'from'] as const) {
      if (!ctx.published(data.model, data[key])) problems.push(yaml.problem([key], `version ${JSON.stringify(data[key])} of ${data.model} is not published (no ${manifestPath(data.model, data[key])})`));
    }
    if (data.version === data.from) problems.push(yaml.problem(['version'], `is the same as from (${JSON.stringify(data.from)}): nothing to roll out`));
    checkWaves(data, [], yaml, ctx, problems);
    if (!data.waves.some((w) => w.name === data.state.wave)) {
      problems.push(yaml.problem(['state', 'wave'], `${JSON.stringify(data.state.wave)} is not one of the waves (${data.waves.map((w) => w.name).join(', ')})`));
    }
  }
}

/**
 * Rules of a list of waves, in a rollout file or in a model's `rollout:`
 * policy (`base` is where the waves are in the file): unique names, soak
 * durations, labels some site has, and every wave selects at least one site.
 */
export function checkWaves(
  r: { model: string; version: string; waves: Wave[] }, base: YamlPath, yaml: YamlFile, ctx: RolloutContext, problems: Problem[],
): void {
  const population = ctx.population(r.model);
  const names = new Map<string, number>();
  r.waves.forEach((w, i) => {
    const here = [...base, 'waves', i];
    const prev = names.get(w.name);
    if (prev !== undefined) problems.push(yaml.problem([...here, 'name'], `wave ${JSON.stringify(w.name)} is also waves[${prev}]`));
    else names.set(w.name, i);
    if (w.soak !== undefined && parseDuration(w.soak) === null) problems.push(yaml.problem([...here, 'soak'], `${JSON.stringify(w.soak)} is not a duration`));
    let unknownLabel = false;
    if (w.sites !== 'all') {
      for (const key of Object.keys(w.sites.labels ?? {})) {
        if (!ctx.labelKeys.has(key)) {
          unknownLabel = true;
          problems.push(yaml.problem([...here, 'sites', 'labels', key], `no site has a label ${JSON.stringify(key)}`, { key: true }));
        }
      }
    }
    if (!unknownLabel && selectWave(r, w.sites, population).size === 0) {
      problems.push(yaml.problem([...here, 'sites'], `wave ${JSON.stringify(w.name)} selects no site that runs ${r.model} (${population.length} do)`));
    }
  });
}

/** A model's `rollout:` policy in model_registry.yaml (its waves are checked against a stand-in version). */
export function checkPolicy(model: string, policy: RolloutPolicy, yaml: YamlFile, ctx: RolloutContext, problems: Problem[]): void {
  checkWaves({ model, version: '', waves: policy.waves }, ['models', model, 'rollout'], yaml, ctx, problems);
}

/** A model may not be called `rollouts`: its folder would be the rollouts folder. */
export function reservedModelName(name: string): boolean {
  return name === ROLLOUTS_NAME;
}
