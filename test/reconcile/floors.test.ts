/**
 * Floors and bounds on registry content (issue 9 item 5): a registry YAML
 * file too large to read is refused by its size, naming the file, in
 * validate and in a site's pass (which changes nothing); a schedule firing
 * more than once a minute and a bandwidth limit under 64 kbps are
 * validation errors naming the file and field.
 */
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.ts';
import { reconcile } from '../../src/reconcile/index.ts';
import { loadRegistry } from '../../src/registry/load.ts';
import { CommitSource } from '../../src/registry/source.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { localFetcherFactory, type LocalCacheFetcher } from './helpers/local-fetcher.ts';
import { TestRegistry } from './helpers/registry.ts';

const env = isolatedGitEnv();

function registry(): TestRegistry {
  const reg = TestRegistry.init(tempDir('modelsync-floors-'), env);
  reg.addVersion('face', '1', { 'model.bin': 'weights one' });
  reg.setCurrent('face', '1');
  reg.site('alpha', { models: ['face'] });
  reg.commit('v1');
  return reg;
}

async function problemsAt(reg: TestRegistry): Promise<string[]> {
  const source = await CommitSource.open({ gitdir: join(reg.dir, '.git') }, 'HEAD');
  return (await loadRegistry(source)).problems.map(formatProblem);
}

describe('registry YAML size cap', () => {
  it('a 20 MiB site file is refused by its size in validate and in the pass; what is active stays', async () => {
    const reg = registry();
    const store = tempDir('modelsync-floors-store-');
    const fetchers: LocalCacheFetcher[] = [];
    const first = await reconcile({ site: 'alpha', registry: reg.dir, store, fetcher: localFetcherFactory(fetchers) });
    expect(first.status).toBe('changed');

    reg.write('sites/alpha.yaml', `# ${'x'.repeat(20 << 20)}\nmodels: [face]\n`);
    reg.commit('a huge site file');
    const problems = await problemsAt(reg);
    expect(problems).toContainEqual(expect.stringMatching(/^sites\/alpha\.yaml:1:1: file is 20\.0 MiB \(20971538 bytes\): too large for a registry text file/));

    const heapBefore = process.memoryUsage().arrayBuffers;
    const r = await reconcile({ site: 'alpha', registry: reg.dir, store, fetcher: localFetcherFactory(fetchers) });
    expect(r.status).toBe('failed');
    expect(r.errors[0]!.code).toBe('ValidationError');
    expect(r.errors[0]!.message).toContain('sites/alpha.yaml:1:1: file is 20.0 MiB');
    // Refused from the object's header: the 20 MiB blob was never inflated into memory.
    expect(process.memoryUsage().arrayBuffers - heapBefore).toBeLessThan(20 << 20);
    expect(readlinkSync(join(store, 'models', 'face', 'current'))).toBe('1');
  });
});

describe('schedule and bandwidth floors', () => {
  it('a six-field schedule firing every second and limit_kbps 1 are positioned validation errors', async () => {
    const reg = registry();
    reg.write('sites/alpha.yaml', 'models: [face]\nschedule: "* * * * * *"\nbandwidth: {limit_kbps: 1}\n');
    reg.commit('too often, too slow');
    const problems = await problemsAt(reg);
    expect(problems).toContainEqual(expect.stringMatching(/^sites\/alpha\.yaml:2:11: schedule: "\* \* \* \* \* \*" fires 60 times a minute .*at most once a minute/));
    expect(problems).toContainEqual(expect.stringMatching(/^sites\/alpha\.yaml:3:25: bandwidth\.limit_kbps: must be at least 64/));
  });

  it('once a minute (five fields, or six with one second) is fine', async () => {
    const reg = registry();
    reg.write('sites/alpha.yaml', 'models: [face]\nschedule: "30 */5 * * * *"\nbandwidth: {limit_kbps: 64}\n');
    reg.commit('fine');
    expect(await problemsAt(reg)).toEqual([]);
  });
});
