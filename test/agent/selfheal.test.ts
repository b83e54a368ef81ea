/**
 * Periodic verification (the safety net under the watch): re-hashes active
 * files at a bounded rate, finds what stat checks cannot see, and gets it
 * repaired by a pass.
 */
import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../src/agent/clock.ts';
import { SelfHealer } from '../../src/agent/selfheal.ts';
import { silentLogger } from '../../src/log.ts';
import { reconcile } from '../../src/reconcile/index.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes } from './helpers/agent.ts';

const env = isolatedGitEnv();

describe('SelfHealer.verifyAll', () => {
  it('finds a file written in place and a file replaced by hand; a pass restores both', async () => {
    const reg = TestRegistry.init(tempDir('heal-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(64_000, 1), 'sub/labels.txt': 'a\nb\n' });
    reg.addVersion('face', '2', { 'model.bin': bytes(64_000, 2), 'sub/labels.txt': 'a\nb\nc\n' });
    reg.setCurrent('face', '1');
    reg.site('alpha', {});
    reg.commit('v1');
    const store = join(tempDir('heal-store-'), 'store');
    const pass = () => reconcile({ site: 'alpha', registry: reg.dir, store });
    expect((await pass()).status).toBe('changed');
    reg.setCurrent('face', '2');
    reg.commit('v2');
    expect((await pass()).status).toBe('changed');

    const passes: string[] = [];
    const healer = new SelfHealer({
      store, clock: systemClock, logger: silentLogger, verifyIntervalMs: 0, watch: false,
      busy: () => false,
      requestPass: async (detail) => {
        passes.push(detail);
        return pass();
      },
    });
    await healer.start();
    // Nothing wrong: nothing found, no pass.
    expect(await healer.verifyAll()).toEqual([]);
    expect(passes).toEqual([]);

    // current (2): one byte flipped in place, through the hard link into the object.
    const model = join(store, 'models/face/current/model.bin');
    chmodSync(model, 0o644);
    const data = readFileSync(model);
    data[10] = data[10]! ^ 1;
    writeFileSync(model, data);
    // previous (1): a file replaced by a copy with other content (a new inode).
    const labels = join(store, 'models/face/1/sub/labels.txt');
    writeFileSync(`${labels}.new`, 'x\n');
    renameSync(`${labels}.new`, labels);

    const found = await healer.verifyAll();
    expect(found.map((d) => [d.version, d.file, d.kind])).toEqual([
      ['2', 'model.bin', 'modified'],
      ['1', 'sub/labels.txt', 'replaced'],
    ]);
    expect(passes).toHaveLength(1);
    // The current version is whole again, from a freshly fetched and verified object.
    expect(readFileSync(model).equals(bytes(64_000, 2))).toBe(true);
    expect(found[0]).toMatchObject({ healed: true });
    expect(healer.healed).toBe(1);
    // The damaged previous version is rebuilt when it is activated again (a rollback).
    reg.setCurrent('face', '1');
    reg.commit('revert to 1');
    expect((await pass()).status).toBe('changed');
    expect(readFileSync(join(store, 'models/face/current/sub/labels.txt'), 'utf8')).toBe('a\nb\n');
    expect(await healer.verifyAll()).toEqual([]);
    await healer.stop();
  });
});
