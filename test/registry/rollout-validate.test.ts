/**
 * registry/rollouts/<model>.yaml and the `rollout:` policy: every mistake
 * positioned at file:line:col, and a valid rollout deciding each site's version.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.ts';
import { desiredState } from '../../src/fleet/desired.ts';
import { siteMatrix } from '../../src/fleet/matrix.ts';
import { rolloutViews } from '../../src/fleet/rollouts.ts';
import { desiredModels, resolveSite } from '../../src/registry/desired.ts';
import { loadRegistry } from '../../src/registry/load.ts';
import { WorkTreeSource } from '../../src/registry/source.ts';
import { tempDir, writeTree } from '../helpers/env.ts';

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
const manifest = (v: string, body: string): string => `name: face\nversion: "${v}"\nfiles:\n  - name: w.bin\n    sha256: ${sha(body)}\n    size: ${body.length}\n`;

const ROLLOUT = `model: face
version: "2026-01-15"
from: "2025-12-08"
waves:
  - {name: canary, sites: {labels: {wave: canary}}, soak: 30m}
  - {name: quarter, sites: {percent: 25}, soak: 2h}
  - {name: all, sites: all}
halt: {degraded: 1}
state: {wave: canary, since: "2026-01-15T10:00:00Z", status: progressing}
`;

function base(): Record<string, string> {
  return {
    'registry/model_registry.yaml': 'models:\n  face:\n    current_version: "2025-12-08"\n',
    'registry/face/2025-12-08/manifest.yaml': manifest('2025-12-08', 'old'),
    'registry/face/2025-12-08/w.bin': 'old',
    'registry/face/2026-01-15/manifest.yaml': manifest('2026-01-15', 'new!'),
    'registry/face/2026-01-15/w.bin': 'new!',
    'registry/rollouts/face.yaml': ROLLOUT,
    'sites/alpha.yaml': 'labels: {wave: canary}\n',
    'sites/beta.yaml': 'labels: {region: north}\n',
    'sites/gamma.yaml': 'labels: {region: south}\n',
    'sites/delta.yaml': 'labels: {region: south}\n',
  };
}

async function load(files: Record<string, string>) {
  const dir = tempDir();
  writeTree(dir, files);
  return loadRegistry(new WorkTreeSource(dir));
}
const problems = async (files: Record<string, string>): Promise<string[]> => (await load(files)).problems.map(formatProblem);

describe('rollout file', () => {
  it('accepts a valid rollout, and the canary alone gets the new version', async () => {
    const { registry, problems } = await load(base());
    expect(problems.map(formatProblem)).toEqual([]);
    const versionOf = (s: string) => desiredModels(registry, resolveSite(registry, s)).get('face')!;
    expect(versionOf('alpha')).toMatchObject({ version: '2026-01-15', rollout: { wave: 'canary', reached: true } });
    for (const s of ['beta', 'gamma', 'delta']) expect(versionOf(s).version).toBe('2025-12-08');
  });

  it('is what the agent planner (desiredState), `sites` and the dashboard listing see', async () => {
    const { registry } = await load(base());
    expect(desiredState(registry, 'alpha').models[0]).toMatchObject({ model: 'face', version: '2026-01-15' });
    expect(desiredState(registry, 'beta').models[0]).toMatchObject({ model: 'face', version: '2025-12-08' });
    const m = siteMatrix(registry);
    expect(Object.fromEntries(m.sites.map((r) => [r.site, r.models.face?.version]))).toEqual({
      alpha: '2026-01-15', beta: '2025-12-08', delta: '2025-12-08', gamma: '2025-12-08',
    });
    const [view] = rolloutViews(registry);
    expect(view).toMatchObject({ model: 'face', status: 'progressing', from: '2025-12-08', version: '2026-01-15' });
    expect(view!.waves.map((w) => [w.name, w.reached, w.sites.length])).toEqual([['canary', true, 1], ['quarter', false, 1], ['all', false, 2]]);
  });

  it('lets a site override win over the rollout', async () => {
    const f = base();
    f['sites/alpha.yaml'] = 'labels: {wave: canary}\noverrides: {face: "2025-12-08"}\n';
    const { registry } = await load(f);
    expect(desiredModels(registry, resolveSite(registry, 'alpha')).get('face')!).toMatchObject({ version: '2025-12-08', reason: 'override' });
  });

  it.each<[string, (f: Record<string, string>) => void, string]>([
    ['a wave that selects no site', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('{wave: canary}}', '{region: west}}')),
      'registry/rollouts/face.yaml:5:27: waves[0].sites: wave "canary" selects no site that runs face (4 do)'],
    ['an unknown label', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('{wave: canary}}', '{ring: canary}}')),
      'registry/rollouts/face.yaml:5:37: waves[0].sites.labels.ring: no site has a label "ring"'],
    ['percent above 100', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('percent: 25', 'percent: 250')),
      'registry/rollouts/face.yaml:6:38: waves[1].sites.percent: must be between 1 and 100'],
    ['percent 0', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('percent: 25', 'percent: 0')),
      'registry/rollouts/face.yaml:6:38: waves[1].sites.percent: must be between 1 and 100'],
    ['a soak that is not a duration', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('soak: 2h', 'soak: two hours')),
      'registry/rollouts/face.yaml:6:49: waves[1].soak: must be a duration such as "30s", "30m", "2h" or "1h30m"'],
    ['a version that is not published', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('version: "2026-01-15"', 'version: "2026-02-01"')),
      'registry/rollouts/face.yaml:2:10: version: version "2026-02-01" of face is not published (no registry/face/2026-02-01/manifest.yaml)'],
    ['a state naming no wave', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('state: {wave: canary', 'state: {wave: canry')),
      'registry/rollouts/face.yaml:9:15: state.wave: "canry" is not one of the waves (canary, quarter, all)'],
    ['a misspelt key', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('soak: 30m', 'soka: 30m')),
      'registry/rollouts/face.yaml:5:53: waves[0].soka: unknown key "soka" (did you mean "soak"?)'],
    ['an unknown status', (f) => (f['registry/rollouts/face.yaml'] = ROLLOUT.replace('status: progressing', 'status: going')), 'registry/rollouts/face.yaml:9:'],
    ['a file named after another model', (f) => {
      f['registry/rollouts/det.yaml'] = f['registry/rollouts/face.yaml']!;
      delete f['registry/rollouts/face.yaml'];
    }, 'registry/rollouts/det.yaml:1:8: model: is "face" but the file is registry/rollouts/det.yaml (the file is named after its model)'],
    ['a model called rollouts', (f) => (f['registry/model_registry.yaml'] += '  rollouts:\n    current_version: "1"\n'),
      'registry/model_registry.yaml:4:3: models.rollouts: invalid key: "rollouts" is reserved (registry/rollouts/ holds rollouts in progress)'],
    ['a policy wave with an unknown label', (f) => (f['registry/model_registry.yaml'] += '    rollout:\n      waves:\n        - {name: c, sites: {labels: {ring: a}}}\n'),
      'registry/model_registry.yaml:6:38: models.face.rollout.waves[0].sites.labels.ring: no site has a label "ring"'],
  ])('reports %s', async (_what, mutate, expected) => {
    const f = base();
    mutate(f);
    const got = await problems(f);
    expect(got.some((p) => p.startsWith(expected)), `${got.join('\n')}\nexpected to start with: ${expected}`).toBe(true);
  });

  it('does not take registry/rollouts/ for a model folder', async () => {
    const got = await problems(base());
    expect(got.filter((p) => p.includes('rollouts/:'))).toEqual([]);
  });
});
