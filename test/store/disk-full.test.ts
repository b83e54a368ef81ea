/**
 * Disk full for real: the store lives on a 1 MiB tmpfs (needs root, as on
 * our CI machines; skipped elsewhere) and a new version does not fit.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readlinkSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { reconcile, type ReconcileOptions } from '../../src/reconcile/index.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { canMount, mountTmpfs } from '../helpers/tmpfs.ts';
import { localFetcherFactory } from '../reconcile/helpers/local-fetcher.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

describe.skipIf(!canMount())('disk full', () => {
  it('fails with a clear error, keeps the store consistent, and recovers once there is room', async () => {
    const env = isolatedGitEnv();
    const reg = TestRegistry.init(tempDir('df-reg-'), env);
    const small = Buffer.alloc(100_000, 1);
    const big = Buffer.alloc(2_000_000, 2);
    reg.addVersion('face', '1', { 'model.bin': small });
    reg.addVersion('face', '2', { 'model.bin': big });
    reg.setCurrent('face', '1');
    reg.site('alpha', {});
    reg.commit('v1');

    const mnt = mountTmpfs('size=1m', 'df-mnt-');
    const store = join(mnt, 'store');
    mkdirSync(store);
    const pass = (over: Partial<ReconcileOptions> = {}) =>
      reconcile({ site: 'alpha', registry: reg.dir, store, fetcher: localFetcherFactory(), ...over });

    expect((await pass()).status).toBe('changed');
    reg.setCurrent('face', '2');
    reg.commit('v2 does not fit');
    // The pre-flight check sees it will not fit: nothing is written at all.
    const pre = await pass();
    expect(pre.status).toBe('failed');
    expect(pre.models[0]!.error).toMatchObject({ code: 'StoreError', data: { diskFull: true, needBytes: 2_000_000 } });
    expect(pre.models[0]!.error!.message).toMatch(/needs 1\.9 MiB on the store's filesystem .* but only \d+ KiB are free; nothing of it was downloaded and 1 stays active/);
    expect(readdirSync(join(store, 'tmp/downloads'))).toEqual([]);

    // Space taken by someone else between the check and the download: the write itself fails, cleanly.
    const r = await pass({ freeBytes: async () => Number.MAX_SAFE_INTEGER });
    expect(r.status).toBe('failed');
    expect(r.exitCode).toBe(1);
    const err = r.models[0]!.error!;
    expect(err.code).toBe('StoreError');
    expect(err.message).toMatch(/disk full \(ENOSPC\)/);
    expect(err.message).toMatch(/1 stays active/);
    expect(readlinkSync(join(store, 'models/face/current'))).toBe('1');
    expect(readFileSync(join(store, 'models/face/current/model.bin'))).toEqual(small);
    expect(existsSync(join(store, 'models/face/2'))).toBe(false);
    expect(existsSync(join(store, 'lock'))).toBe(false);

    // Room again: the next pass converges.
    expect(spawnSync('mount', ['-o', 'remount,size=8m', mnt]).status).toBe(0);
    const after = await pass();
    expect(after.errors).toEqual([]);
    expect(readlinkSync(join(store, 'models/face/current'))).toBe('2');
    expect(readFileSync(join(store, 'models/face/current/model.bin')).equals(big)).toBe(true);
  });
});
