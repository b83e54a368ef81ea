/** The example registry shipped at the root of this repository is valid and says what the docs say. */
import { describe, expect, it } from 'vitest';
import { desiredModels, resolveSite } from '../../src/registry/desired.ts';
import { loadRegistry } from '../../src/registry/load.ts';
import { findGitDir, WorkTreeSource } from '../../src/registry/source.ts';
import { CommitSource } from '../../src/registry/source.ts';
import { compileTemplate, renderTemplate, templateContext } from '../../src/templates/index.ts';
import { formatProblem } from '../../src/errors.ts';
import { ROOT } from '../helpers/env.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

describe('the example registry', () => {
  it('validates in the working tree, content hashed against every manifest', async () => {
    const { registry, problems } = await loadRegistry(new WorkTreeSource(ROOT));
    expect(problems.map(formatProblem)).toEqual([]);
    expect([...registry.models.keys()]).toEqual(['coral_packages', 'face_detection', 'face_recognition', 'haarcascades', 'mobilenet_ssd', 'openface_torch']);
    expect([...registry.models.get('face_recognition')!.versions.keys()].sort()).toEqual(['2025-11-20', '2025-12-08']);
    expect(registry.models.get('face_recognition')!.versions.get('2025-12-08')!.manifest.files.map((f) => f.name)).toEqual([
      'baselines.hdf5', 'facedata.hdf5', 'facelist.csv', 'facemodel.pickle',
    ]);
  });

  it('is committed as plain files (this repository uses no LFS)', async () => {
    const src = await CommitSource.open(await findGitDir(ROOT), 'HEAD');
    const content = await src.inspect('registry/face_recognition/2025-12-08/facemodel.pickle');
    expect(content?.kind).toBe('content');
  });

  it('sites resolve as documented: alpha everything, beta mobilenet only and capped, gamma pinned', async () => {
    const { registry } = await loadRegistry(new WorkTreeSource(ROOT), { checkContent: false });
    const versions = (site: string): Record<string, string> =>
      Object.fromEntries([...desiredModels(registry, resolveSite(registry, site)).values()].map((d) => [d.model, d.version]));
    expect(Object.keys(versions('alpha'))).toHaveLength(6);
    expect(versions('beta')).toEqual({ mobilenet_ssd: '2025-10-01' });
    expect(resolveSite(registry, 'beta').bandwidth).toEqual({ limit_kbps: 5000 });
    expect(resolveSite(registry, 'beta').labels).toEqual({ tier: 'outpost', region: 'south' });
    expect(versions('gamma').face_recognition).toBe('2025-11-20');
    expect(versions('alpha').face_recognition).toBe('2025-12-08');
  });

  it('templates render model paths for a site', async () => {
    const { registry } = await loadRegistry(new WorkTreeSource(ROOT), { checkContent: false });
    const site = resolveSite(registry, 'gamma');
    const ctx = templateContext({
      site: { name: 'gamma', labels: site.labels },
      models: [...desiredModels(registry, site).values()].map((d) => ({
        name: d.model, version: d.version, dir: `/store/models/${d.model}/${d.version}`,
        files: registry.models.get(d.model)!.versions.get(d.version)!.manifest.files,
      })),
    });
    const out = renderTemplate(compileTemplate(readFileSync(join(ROOT, 'templates/FaceRecon.yaml.j2'), 'utf8'), 'FaceRecon'), ctx);
    expect(out).toContain('model_version: "2025-11-20"\n');
    expect(out).toContain('recognizer: /store/models/face_recognition/2025-11-20/facemodel.pickle\n');
    expect(out).toContain('embedder: /store/models/openface_torch/2024-03-12/nn4.small2.v1.t7\n');
  });
});
