import { describe, expect, it } from 'vitest';
import { load, oidOf, version } from '../../test/helpers/memory-source.ts';
import type { ChunkIndex } from '../lfs/cdc.ts';
import { desiredState } from './desired.ts';
import { formatPlanMarkdown, formatPlanText } from './plan-format.ts';
import { planChange, type PreviewSide } from './preview.ts';
import { templateSources } from './render.ts';

const MiB = 1024 * 1024;
const REG = (current: Record<string, string>): string =>
  `models:\n${Object.entries(current).map(([m, v]) => `  ${m}: {current_version: "${v}"}`).join('\n')}\n`;

const BASE_FILES: Record<string, string> = {
  ...version('face', '1', { 'w.bin': { oid: oidOf('face1'), size: 8 * MiB, chunks: { oid: oidOf('face1.idx'), size: 900 } }, 'labels.txt': { oid: oidOf('labels'), size: 100 } }),
  ...version('face', '2', { 'w.bin': { oid: oidOf('face2'), size: 8 * MiB, chunks: { oid: oidOf('face2.idx'), size: 950 } }, 'labels.txt': { oid: oidOf('labels'), size: 100 } }),
  ...version('ssd', '2025-01-01', { 'ssd.bin': { oid: oidOf('ssd1'), size: 3000 } }),
  ...version('ssd', '2025-02-01', { 'ssd.bin': { oid: oidOf('ssd2'), size: 4000 } }),
  'templates/face.yaml.j2': 'site: {{ site.name }}\nweights: {{ models.face.dir }}/w.bin\nregion: {{ site.labels.region }}\n',
  'sites/groups/outposts.yaml': 'models: [ssd]\noverrides: {ssd: "2025-01-01"}\n',
  'sites/alpha.yaml': 'labels: {region: north}\ntemplates:\n  - {src: templates/face.yaml.j2, dest: face.yaml, models: [face]}\n',
  'sites/beta.yaml': 'extends: [groups/outposts]\n',
  'sites/gamma.yaml': 'models: [ssd]\n',
};

async function side(files: Record<string, string>, label: string): Promise<PreviewSide & { problems: import('../errors.ts').Problem[] }> {
  const { registry, problems } = await load(files, label);
  const templates = new Map(templateSources(registry).map((src) => [src, files[src] ?? null] as const));
  return { label, registry, templates, problems };
}

/** Chunk indexes: 128 chunks of 64 KiB; `shared` of them equal between the two versions. */
function indexes(shared: number): Map<string, ChunkIndex> {
  const params = { min: 16384, avg: 65536, max: 262144 };
  const chunks = (tag: string, n: number) => Array.from({ length: 128 }, (_, i) => ({ offset: i * 65536, size: 65536, sha256: oidOf(i < n ? `same${i}` : `${tag}${i}`) }));
  return new Map([
    [oidOf('face1.idx'), { params, oid: oidOf('face1'), size: 8 * MiB, chunks: chunks('a', 128) }],
    [oidOf('face2.idx'), { params, oid: oidOf('face2'), size: 8 * MiB, chunks: chunks('b', shared) }],
  ]);
}

async function planFor(baseCurrent: Record<string, string>, headCurrent: Record<string, string>, headExtra: Record<string, string> = {}, chunks = indexes(120)) {
  const base = await side({ ...BASE_FILES, 'registry/model_registry.yaml': REG(baseCurrent) }, 'main');
  const head = await side({ ...BASE_FILES, 'registry/model_registry.yaml': REG(headCurrent), ...headExtra }, 'feature');
  return planChange({ base, head, problems: head.problems, chunks: (oid) => chunks.get(oid) });
}

describe('planChange', () => {
  it('an upgrade reaches the sites that run the model; others are counted, not listed', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '2', ssd: '2025-02-01' });
    expect(plan.sites.map((s) => s.site)).toEqual(['alpha']);
    expect(plan.unaffected).toBe(2);
    expect(plan.total).toBe(3);
    const [m] = plan.sites[0]!.models;
    expect(m).toMatchObject({ model: 'face', from: '1', to: '2', kind: 'upgrade', full: 8 * MiB, unknown: false });
    // 120 of 128 chunks are held: 8 chunks plus the new index.
    expect(m!.estimate).toBe(8 * 65536 + 950);
    // labels.txt has the same content in both versions: not a change.
    expect(m!.files.map((f) => [f.name, f.change, f.basis])).toEqual([['w.bin', 'changed', 'delta']]);
    // The rendered template follows the version.
    expect(plan.sites[0]!.templates).toHaveLength(1);
    expect(plan.sites[0]!.templates[0]!.diff).toContain('-weights: /var/lib/modelsync/models/face/1/w.bin\n+weights: /var/lib/modelsync/models/face/2/w.bin\n');
  });

  it('a group override keeps its sites where they are; going back is a rollback', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '1', ssd: '2025-01-01' });
    // beta gets 2025-01-01 from groups/outposts either way; alpha (every model) and gamma follow current_version back.
    expect(plan.sites.map((s) => s.site)).toEqual(['alpha', 'gamma']);
    expect(plan.sites[1]!.models[0]).toMatchObject({ model: 'ssd', from: '2025-02-01', to: '2025-01-01', kind: 'rollback', reason: 'current', full: 3000, estimate: 3000 });
  });

  it('install, remove, and a new site', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '1', ssd: '2025-02-01' }, {
      'sites/gamma.yaml': 'models: [face]\n',
      'sites/delta.yaml': 'models: [ssd]\noverrides: {ssd: "2025-01-01"}\n',
    });
    const byName = Object.fromEntries(plan.sites.map((s) => [s.site, s]));
    expect(byName.gamma!.models.map((m) => [m.model, m.kind, m.from, m.to])).toEqual([['face', 'install', undefined, '1'], ['ssd', 'remove', '2025-02-01', undefined]]);
    // Installing fetches everything, with no delta source.
    expect(byName.gamma!.models[0]).toMatchObject({ full: 8 * MiB + 100, estimate: 8 * MiB + 100 });
    expect(byName.delta).toMatchObject({ status: 'added' });
    expect(byName.delta!.models[0]).toMatchObject({ kind: 'install', reason: 'override', to: '2025-01-01' });
  });

  it('little reuse means a full download plus the index; a missing index makes the estimate an upper bound', async () => {
    const few = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '2', ssd: '2025-02-01' }, {}, indexes(4));
    expect(few.sites[0]!.models[0]).toMatchObject({ estimate: 8 * MiB + 950, unknown: false });
    expect(few.sites[0]!.models[0]!.files[0]!.basis).toBe('full (delta would reuse too little)');
    const none = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '2', ssd: '2025-02-01' }, {}, new Map());
    expect(none.sites[0]!.models[0]).toMatchObject({ estimate: 8 * MiB, full: 8 * MiB, unknown: true });
    expect(formatPlanText(none)).toContain('≤ 8.0 MiB');
  });

  it('a label change alone changes a rendered template, not a model', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '1', ssd: '2025-02-01' }, {
      'sites/alpha.yaml': 'labels: {region: south}\ntemplates:\n  - {src: templates/face.yaml.j2, dest: face.yaml, models: [face]}\n',
    });
    expect(plan.sites).toHaveLength(1);
    expect(plan.sites[0]!.models).toEqual([]);
    expect(plan.sites[0]!.templates[0]!.diff).toMatch(/@@ -1,3 \+1,3 @@\n site: alpha\n weights: .*\n-region: north\n\+region: south\n/);
  });

  it('a template that fails at head is reported, and the site keeps its file', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '1', ssd: '2025-02-01' }, { 'templates/face.yaml.j2': 'x: {{ models.nope.dir }}\n' });
    const t = plan.sites[0]!.templates[0]!;
    expect(t.diff).toBe('');
    expect(t.error).toMatch(/nope/);
    // validate reports the same template problem for head
    expect(plan.problems.some((p) => p.file === 'templates/face.yaml.j2')).toBe(true);
  });

  it('changes nothing when nothing a site sees differs', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '1', ssd: '2025-02-01' }, { 'registry/face/1/README.md': 'notes\n' });
    expect(plan.sites).toEqual([]);
    expect(plan.unaffected).toBe(3);
    expect(formatPlanText(plan)).toContain('changes nothing');
  });

  it('--site limits the sites considered', async () => {
    const base = await side({ ...BASE_FILES, 'registry/model_registry.yaml': REG({ face: '1', ssd: '2025-02-01' }) }, 'main');
    const head = await side({ ...BASE_FILES, 'registry/model_registry.yaml': REG({ face: '2', ssd: '2025-01-01' }) }, 'feature');
    const plan = planChange({ base, head, problems: [], sites: ['gamma'], chunks: () => undefined });
    expect(plan.sites.map((s) => s.site)).toEqual(['gamma']);
    expect(plan.total).toBe(1);
  });

  it('a site whose head does not resolve is listed with the error and changes nothing', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '1', ssd: '2025-02-01' }, { 'sites/gamma.yaml': 'extends: [groups/missing]\n' });
    const gamma = plan.sites.find((s) => s.site === 'gamma')!;
    expect(gamma.errors[0]).toMatch(/groups\/missing/);
    expect(gamma.models).toEqual([]);
    expect(plan.problems.length).toBeGreaterThan(0);
  });

  it('agrees with desiredState, the function the reconcile pass resolves with', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '2', ssd: '2025-01-01' });
    const head = await side({ ...BASE_FILES, 'registry/model_registry.yaml': REG({ face: '2', ssd: '2025-01-01' }) }, 'feature');
    for (const s of plan.sites) {
      const want = desiredState(head.registry, s.site).models;
      for (const m of s.models) expect(m.to).toBe(want.find((d) => d.model === m.model)?.version);
    }
  });
});

describe('markdown', () => {
  it('has a summary line, a table per model, and the template diff in <details>; a fence cannot be broken out of', async () => {
    const plan = await planFor({ face: '1', ssd: '2025-02-01' }, { face: '2', ssd: '2025-01-01' }, {
      'templates/face.yaml.j2': 'weights: {{ models.face.dir }}\n```\n</details>\n',
    });
    const md = formatPlanMarkdown(plan);
    expect(md.split('\n')[0]).toBe('### modelsync plan: 2 of 3 sites change, 1 unaffected; sites fetch ≈ 519 KiB (8.0 MiB in full) in all');
    expect(md).toContain('#### face\n\n| site | version | kind | files | fetch (estimate) | in full |\n|---|---|---|---|---|---|\n| alpha | 1 → 2 | upgrade | changed `w.bin` | 513 KiB | 8.0 MiB |');
    expect(md).toContain('#### ssd\n');
    // Sites with the same change share a row.
    expect(md).toContain('| alpha, gamma | 2025-02-01 → 2025-01-01 | rollback |');
    expect(md).toContain('<details><summary>alpha: <code>face.yaml</code>');
    // The template's ``` run is inside a longer fence.
    expect(md).toContain('````diff\n');
  });
});

describe('markdown for a fleet', () => {
  it('groups sites with the same change into one row and stays under a comment\'s size limit', async () => {
    const fleet: Record<string, string> = {};
    for (let i = 0; i < 200; i++) fleet[`sites/s${String(i).padStart(3, '0')}.yaml`] = 'models: [face]\ntemplates:\n  - {src: templates/big.j2, dest: big.yaml}\n';
    fleet['templates/big.j2'] = `{% for i in range(60) %}line {{ i }} {{ site.name }} {{ models.face.dir }}\n{% endfor %}`;
    const files = { ...BASE_FILES, ...fleet };
    const base = await side({ ...files, 'registry/model_registry.yaml': REG({ face: '1', ssd: '2025-02-01' }) }, 'main');
    const head = await side({ ...files, 'registry/model_registry.yaml': REG({ face: '2', ssd: '2025-02-01' }) }, 'feature');
    const plan = planChange({ base, head, problems: [], chunks: () => undefined });
    expect(plan.sites).toHaveLength(201);
    const md = formatPlanMarkdown(plan);
    expect(md.length).toBeLessThan(65_536);
    const rows = md.split('\n').filter((l) => l.includes('| 1 → 2 |'));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/^\| alpha, s000, s001, .*, s010 and 189 more \| 1 → 2 \| upgrade \|/);
    expect(md).toMatch(/\d+ more template diffs not shown/);
    // The text form has everything.
    expect(formatPlanText(plan)).toContain('line 59 s199 /var/lib/modelsync/models/face/2');
  });
});

describe('a site file removed at head', () => {
  it('is listed as removed with what its agent does (nothing), not as models removed', async () => {
    const base = await side({ ...BASE_FILES, 'registry/model_registry.yaml': REG({ face: '1', ssd: '2025-02-01' }) }, 'main');
    const files: Record<string, string> = { ...BASE_FILES, 'registry/model_registry.yaml': REG({ face: '1', ssd: '2025-02-01' }) };
    delete files['sites/gamma.yaml'];
    const head = await side(files, 'feature');
    const plan = planChange({ base, head, problems: [], chunks: () => undefined });
    expect(plan.sites).toHaveLength(1);
    expect(plan.sites[0]).toMatchObject({ site: 'gamma', status: 'removed', full: 0, estimate: 0, models: [], templates: [] });
    expect(plan.sites[0]!.errors[0]).toMatch(/its agent changes nothing/);
    expect(formatPlanText(plan)).toContain('site gamma (site file removed)');
  });
});
