import { describe, expect, it } from 'vitest';
import { load, oidOf, version } from '../../test/helpers/memory-source.ts';
import { siteMatrix } from './matrix.ts';

describe('siteMatrix', () => {
  it('marks site overrides, group overrides and where the model selection comes from', async () => {
    const { registry, problems } = await load({
      'registry/model_registry.yaml': 'models:\n  face: {current_version: "2"}\n  ssd: {current_version: "3"}\n',
      ...version('face', '1', { 'w.bin': { oid: oidOf('f1'), size: 1 } }),
      ...version('face', '2', { 'w.bin': { oid: oidOf('f2'), size: 1 } }),
      ...version('ssd', '2', { 's.bin': { oid: oidOf('s2'), size: 1 } }),
      ...version('ssd', '3', { 's.bin': { oid: oidOf('s3'), size: 1 } }),
      'sites/groups/outposts.yaml': 'models: [ssd]\noverrides: {ssd: "2"}\n',
      'sites/alpha.yaml': 'overrides: {face: "1"}\n',
      'sites/beta.yaml': 'extends: [groups/outposts]\n',
      'sites/gamma.yaml': 'extends: [groups/outposts]\noverrides: {ssd: "3"}\n',
    });
    expect(problems).toEqual([]);
    const m = siteMatrix(registry);
    expect(m.models).toEqual(['face', 'ssd']);
    const row = (s: string) => m.sites.find((r) => r.site === s)!;
    expect(row('alpha')).toMatchObject({ selectionFrom: undefined, models: { face: { version: '1', source: 'override', from: 'alpha' }, ssd: { version: '3', source: 'current' } } });
    expect(row('beta')).toMatchObject({ selectionFrom: 'groups/outposts', models: { ssd: { version: '2', source: 'override', from: 'groups/outposts' } } });
    expect(row('beta').models.face).toBeUndefined();
    // The site's own override wins over its group's, and says so.
    expect(row('gamma').models.ssd).toEqual({ version: '3', source: 'override', from: 'gamma' });
  });
});
