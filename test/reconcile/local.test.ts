/**
 * Reconcile passes against local-path registries built and changed with the
 * stock git + git-lfs clients: the store's behaviour a site operator sees.
 */
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync, writeFileSync, readdirSync, chmodSync, mkdirSync, symlinkSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { reconcile, type ReconcileOptions } from '../../src/reconcile/index.ts';
import type { ActivationHooks, PassInfo } from '../../src/reconcile/hooks.ts';
import { setPin, removePin, StoreLayout, readState } from '../../src/store/index.ts';
import { storeStatus } from '../../src/reconcile/status.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { localFetcherFactory, type LocalCacheFetcher } from './helpers/local-fetcher.ts';
import { TestRegistry, sha256 } from './helpers/registry.ts';

const env = isolatedGitEnv();

function bytes(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed.charCodeAt(i % seed.length)) & 0xff;
  return out;
}

let reg: TestRegistry;
let store: string;
let fetchers: LocalCacheFetcher[];

function pass(extra: Partial<ReconcileOptions> = {}) {
  return reconcile({ site: 'alpha', registry: reg.dir, store, fetcher: localFetcherFactory(fetchers), ...extra });
}
const current = (model: string): string | undefined => {
  try {
    return readlinkSync(join(store, 'models', model, 'current'));
  } catch {
    return undefined;
  }
};
const read = (model: string, file: string, link = 'current'): string => readFileSync(join(store, 'models', model, link, file), 'utf8');

beforeEach(() => {
  reg = TestRegistry.init(tempDir('reg-'), env);
  store = join(tempDir('store-'), 'store');
  fetchers = [];
  reg.addVersion('face', '2025-01-01', { 'model.bin': bytes(5000, 'a'), 'labels.txt': 'cat\ndog\n' });
  reg.addVersion('face', '2025-02-01', { 'model.bin': bytes(6000, 'b'), 'labels.txt': 'cat\ndog\n' });
  reg.addVersion('ssd', '1', { 'weights/w.bin': bytes(3000, 'c') });
  reg.addVersion('ssd', '2', { 'weights/w.bin': bytes(3000, 'd') });
  reg.setCurrent('face', '2025-01-01');
  reg.setCurrent('ssd', '1');
  reg.site('alpha', { retention: { keep: 5 } });
  reg.commit('initial registry');
});

describe('reconcile against a local registry', () => {
  it('installs what the registry declares, verified, read-only, content stored once', async () => {
    const progress: Array<{ bytes: number; total: number; objectsDone: number; objects: number }> = [];
    const r = await pass({ onProgress: (p) => progress.push(p) });
    expect(progress.at(-1)).toEqual({ phase: 'fetch', bytes: 8008, total: 8008, objectsDone: 3, objects: 3 });
    expect(progress.every((p, i) => i === 0 || p.bytes >= progress[i - 1]!.bytes)).toBe(true);
    expect(r.status).toBe('changed');
    expect(r.exitCode).toBe(0);
    expect(r.commit).toBe(reg.head());
    expect(current('face')).toBe('2025-01-01');
    expect(current('ssd')).toBe('1');
    expect(readFileSync(join(store, 'models/face/current/model.bin'))).toEqual(bytes(5000, 'a'));
    expect(read('ssd', 'weights/w.bin')).toBe(bytes(3000, 'c').toString());
    expect(r.changed.map((c) => c.model).sort()).toEqual(['face', 'ssd']);
    // The version file is a hard link to a read-only object named by its sha256.
    const f = statSync(join(store, 'models/face/2025-01-01/model.bin'));
    const oid = sha256(bytes(5000, 'a'));
    const o = statSync(join(store, 'objects/sha256', oid.slice(0, 2), oid.slice(2, 4), oid));
    expect(f.ino).toBe(o.ino);
    expect(o.mode & 0o222).toBe(0);
    expect(r.bytesFetched).toBe(5000 + 8 + 3000);
    const state = JSON.parse(readFileSync(join(store, 'state.json'), 'utf8'));
    expect(state.appliedCommit).toBe(reg.head());
    expect(state.models.face).toMatchObject({ active: '2025-01-01', lastApplied: '2025-01-01', declared: '2025-01-01' });
    expect(state.history.at(-1)).toMatchObject({ status: 'changed', commit: reg.head() });
    expect(existsSync(join(store, 'lock'))).toBe(false);
  });

  it('a second pass with nothing changed is in sync and fetches nothing', async () => {
    await pass();
    fetchers.length = 0;
    const r = await pass();
    expect(r.status).toBe('in-sync');
    expect(r.bytesFetched).toBe(0);
    expect(fetchers).toEqual([]); // no fetcher was even built
    expect(r.models.every((m) => m.outcome === 'unchanged')).toBe(true);
  });

  it('reuses the desired state of a validated commit: same commit, site and pins; not after a pin or a new commit', async () => {
    expect((await pass()).desiredFrom).toBe('registry');
    expect((await pass()).desiredFrom).toBe('snapshot');
    await setPin(new StoreLayout(store), 'ssd', '2');
    const pinned = await pass();
    expect(pinned.desiredFrom).toBe('registry');
    expect(current('ssd')).toBe('2');
    expect((await pass()).desiredFrom).toBe('snapshot');
    reg.write('README.md', 'x\n');
    reg.commit('new commit');
    expect((await pass()).desiredFrom).toBe('registry');
    // The agent's passes reuse it too; the whole registry is read only if a hook asks for it.
    const seen: string[] = [];
    let loaded: string[] = [];
    let info: PassInfo | undefined;
    const hooks: ActivationHooks = {
      onRegistry: (i) => {
        info = i;
        seen.push(`${i.commit} ${i.desired.map((d) => `${d.model}@${d.version}:${d.files?.length}`).join(',')}`);
      },
      async settle() {
        if (seen.length === 2) loaded = [...(await info!.loadRegistry()).models.keys()];
        return { warnings: [] };
      },
      afterSwitch: async () => ({ unhealthy: [] }),
      afterRollback: async () => {},
    };
    expect((await pass({ hooks })).desiredFrom).toBe('snapshot');
    expect(seen).toEqual([`${reg.head()} face@2025-01-01:2,ssd@2:1`]);
    await pass({ hooks });
    expect(loaded).toEqual(['face', 'ssd']);
  });

  it('re-fetches a deleted object of the active version (desired state reused from the snapshot)', async () => {
    await pass();
    const oid = sha256(bytes(5000, 'a'));
    const { rmSync } = await import('node:fs');
    rmSync(join(store, 'models/face/2025-01-01/model.bin'));
    rmSync(join(store, 'objects/sha256', oid.slice(0, 2), oid.slice(2, 4), oid));
    const r = await pass();
    expect(r.desiredFrom).toBe('snapshot');
    expect(r.models.find((m) => m.model === 'face')).toMatchObject({ action: 'fetch', reason: 'repair', outcome: 'activated' });
    expect(r.bytesFetched).toBe(5000);
    expect(readFileSync(join(store, 'models/face/current/model.bin'))).toEqual(bytes(5000, 'a'));
  });

  it('upgrades on a commit to current_version, fetching only new content; previous follows', async () => {
    await pass();
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote face 2025-02-01');
    const r = await pass();
    expect(r.status).toBe('changed');
    expect(r.changed).toEqual([{ model: 'face', from: '2025-01-01', to: '2025-02-01' }]);
    expect(current('face')).toBe('2025-02-01');
    expect(readlinkSync(join(store, 'models/face/previous'))).toBe('2025-01-01');
    // labels.txt is identical in both versions: stored once, not fetched again.
    expect(r.bytesFetched).toBe(6000);
    expect(statSync(join(store, 'models/face/2025-01-01/labels.txt')).ino).toBe(statSync(join(store, 'models/face/2025-02-01/labels.txt')).ino);
  });

  it('applies a git revert of a promotion as an authorised rollback', async () => {
    await pass();
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote face 2025-02-01');
    await pass();
    reg.git('revert', '--no-edit', 'HEAD');
    const r = await pass();
    expect(r.status).toBe('changed');
    expect(r.models.find((m) => m.model === 'face')).toMatchObject({ reason: 'rollback', outcome: 'activated', active: '2025-01-01' });
    expect(current('face')).toBe('2025-01-01');
    expect(r.bytesFetched).toBe(0); // the old version was still in the store
  });

  it('leaves a newer version activated by hand alone as a conflict (exit 3) until --force', async () => {
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote');
    await pass();
    reg.git('revert', '--no-edit', 'HEAD');
    await pass(); // rolled back to 2025-01-01; 2025-02-01 still in the store
    // An operator switches by hand to the newer version.
    symlinkSync('2025-02-01', join(store, 'models/face/current.tmp'));
    renameSync(join(store, 'models/face/current.tmp'), join(store, 'models/face/current'));
    const r = await pass();
    expect(r.status).toBe('conflict');
    expect(r.exitCode).toBe(3);
    expect(r.conflicts).toEqual([expect.objectContaining({ model: 'face', active: '2025-02-01', declared: '2025-01-01' })]);
    expect(current('face')).toBe('2025-02-01');
    const st = (await readState(new StoreLayout(store))).state;
    expect(st.models.face?.conflict).toMatchObject({ active: '2025-02-01', declared: '2025-01-01' });
    const forced = await pass({ force: true });
    expect(forced.status).toBe('changed');
    expect(forced.models.find((m) => m.model === 'face')?.reason).toBe('forced');
    expect(current('face')).toBe('2025-01-01');
    expect((await pass()).status).toBe('in-sync');
  });

  it('a fresh store over files laid out by hand: the declared version is adopted and re-verified; a newer one is a conflict', async () => {
    // What an older deployment tool left: plain files and a current link, no state.json.
    mkdirSync(join(store, 'models/face/2025-01-01'), { recursive: true });
    writeFileSync(join(store, 'models/face/2025-01-01/model.bin'), bytes(5000, 'a'));
    writeFileSync(join(store, 'models/face/2025-01-01/labels.txt'), 'cat\ndog\n');
    symlinkSync('2025-01-01', join(store, 'models/face/current'));
    mkdirSync(join(store, 'models/ssd/9'), { recursive: true });
    writeFileSync(join(store, 'models/ssd/9/w.bin'), 'hand-made');
    symlinkSync('9', join(store, 'models/ssd/current'));
    const r = await pass();
    expect(r.models.find((m) => m.model === 'face')).toMatchObject({ reason: 'repair', outcome: 'activated', active: '2025-01-01' });
    expect(lstatSync(join(store, 'models/face/2025-01-01/model.bin')).nlink).toBe(2); // now a link to its verified object
    expect(r.models.find((m) => m.model === 'ssd')).toMatchObject({ action: 'conflict', detail: expect.stringMatching(/active 9 was not applied by this agent and is newer than 1/) });
    expect(r.exitCode).toBe(3);
    expect(current('ssd')).toBe('9');
    const state = (await readState(new StoreLayout(store))).state;
    expect(state.models.face?.lastApplied).toBe('2025-01-01');
    expect(state.models.ssd?.lastApplied).toBeUndefined();
  });

  it('follows a local pin (reported as drift), and converges when it is lifted', async () => {
    await pass();
    await setPin(new StoreLayout(store), 'ssd', '2');
    const r = await pass();
    const ssd = r.models.find((m) => m.model === 'ssd')!;
    expect(ssd).toMatchObject({ reason: 'pin', outcome: 'activated', active: '2' });
    expect(ssd.drift).toMatch(/pinned to 2/);
    expect(current('ssd')).toBe('2');
    const st = (await readState(new StoreLayout(store))).state;
    expect(st.pins).toEqual({ ssd: '2' });
    expect(st.models.ssd?.lastApplied).toBe('1'); // a pin is not "applied from the registry"
    await removePin(new StoreLayout(store), 'ssd');
    // The lifted pin is newer than declared: a conflict, as DESIGN.md says; --force settles it.
    const after = await pass();
    expect(after.status).toBe('conflict');
    expect((await pass({ force: true })).status).toBe('changed');
    expect(current('ssd')).toBe('1');
  });

  it('fails only the model whose pin names a version the registry does not publish', async () => {
    await pass();
    await setPin(new StoreLayout(store), 'ssd', '9');
    const dry = await pass({ dryRun: true });
    expect(dry.models.find((m) => m.model === 'ssd')).toMatchObject({ action: 'error', outcome: 'failed', reason: 'unpublished' });
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote face');
    const r = await pass();
    expect(r.status).toBe('failed');
    expect(r.errors).toEqual([expect.objectContaining({ model: 'ssd', message: expect.stringMatching(/9 is not published/) })]);
    expect(current('ssd')).toBe('1');
    expect(current('face')).toBe('2025-02-01'); // the other model went ahead
  });

  it('honours the site selection and overrides, merged through extends', async () => {
    reg.write('sites/groups/outposts.yaml', 'models: [face]\noverrides: {face: "2025-02-01"}\n');
    reg.site('alpha', { extends: ['groups/outposts'] });
    reg.commit('alpha is an outpost');
    const r = await pass();
    expect(r.models.map((m) => m.model)).toEqual(['face']);
    expect(current('face')).toBe('2025-02-01');
    expect(existsSync(join(store, 'models/ssd'))).toBe(false);
    expect(r.models[0]).toMatchObject({ desiredReason: 'override', declared: '2025-01-01' });
  });

  it('keeps a model the site stops selecting as it is (unmanaged), and manages it again once re-selected', async () => {
    await pass();
    reg.site('alpha', { models: ['face'] });
    reg.commit('alpha drops ssd');
    const r = await pass();
    expect(r.status).toBe('in-sync');
    expect(r.unmanaged).toEqual([{ model: 'ssd', active: '1' }]);
    expect(current('ssd')).toBe('1');
    let state = (await readState(new StoreLayout(store))).state;
    expect(state.selected).toEqual(['face']);
    expect(state.models.ssd).toMatchObject({ active: '1', lastApplied: '1', unmanagedSince: expect.any(String) });
    expect(state.models.ssd?.desired).toBeUndefined();
    reg.site('alpha', {});
    reg.setCurrent('ssd', '2');
    reg.commit('alpha runs ssd again, a newer one');
    const back = await pass();
    expect(back.unmanaged).toEqual([]);
    expect(back.changed).toEqual([{ model: 'ssd', from: '1', to: '2' }]); // an upgrade, not a conflict
    state = (await readState(new StoreLayout(store))).state;
    expect(state.models.ssd?.unmanagedSince).toBeUndefined();
  });

  it('changes nothing when the registry is invalid at the commit, naming file and line', async () => {
    await pass();
    const before = readFileSync(join(store, 'state.json'), 'utf8');
    reg.setCurrent('face', '2025-02-01');
    reg.write('sites/alpha.yaml', 'retention: {keep: 5}\nmodels: [face, nosuchmodel]\n');
    reg.commit('broken site file');
    const r = await pass();
    expect(r.status).toBe('failed');
    expect(r.exitCode).toBe(1);
    expect(r.errors[0]!.code).toBe('ValidationError');
    expect(r.errors[0]!.message).toMatch(/sites\/alpha\.yaml:2:\d+: models\[1\]: model "nosuchmodel"/);
    expect(current('face')).toBe('2025-01-01');
    const state = JSON.parse(readFileSync(join(store, 'state.json'), 'utf8'));
    expect(state.appliedCommit).toBe(JSON.parse(before).appliedCommit);
    expect(state.attemptedCommit).toBe(reg.head());
  });

  it('refuses an object whose bytes do not match, keeping the previous version current', async () => {
    await pass();
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote');
    const oid = sha256(bytes(6000, 'b'));
    chmodSync(reg.lfsObject(oid), 0o644);
    writeFileSync(reg.lfsObject(oid), bytes(6000, 'X'));
    const r = await pass();
    expect(r.status).toBe('failed');
    const face = r.models.find((m) => m.model === 'face')!;
    expect(face.outcome).toBe('failed');
    expect(face.error?.code).toBe('ChecksumError');
    expect(face.error?.message).toMatch(/checksum failed/);
    expect(face.error?.message).toMatch(/2025-01-01 stays active/);
    expect(current('face')).toBe('2025-01-01');
    expect(existsSync(join(store, 'models/face/2025-02-01'))).toBe(false);
    expect(existsSync(join(store, 'objects/sha256', oid.slice(0, 2), oid.slice(2, 4), oid))).toBe(false);
  });

  it('reads files kept as plain git blobs (not LFS pointers) from git, verified', async () => {
    reg.write('.gitattributes', `${readFileSync(join(reg.dir, '.gitattributes'), 'utf8')}registry/**/*.json !filter !diff !merge text\n`);
    reg.addVersion('cfg', '1', { 'config.json': '{"threshold": 0.5}\n' });
    reg.setCurrent('cfg', '1');
    reg.commit('cfg as a plain blob');
    expect(reg.git('show', 'HEAD:registry/cfg/1/config.json')).toBe('{"threshold": 0.5}');
    const r = await pass();
    expect(r.errors).toEqual([]);
    expect(read('cfg', 'config.json')).toBe('{"threshold": 0.5}\n');
  });

  it('refuses a plain git blob over the size cap before reading it, naming the file and the fix', async () => {
    reg.write('.gitattributes', `${readFileSync(join(reg.dir, '.gitattributes'), 'utf8')}registry/**/*.json !filter !diff !merge text\n`);
    reg.addVersion('cfg', '1', { 'big.json': `[${'1,'.repeat(4000)}1]\n` });
    reg.setCurrent('cfg', '1');
    reg.commit('a big file forgotten outside LFS');
    for (const packed of [false, true]) {
      if (packed) reg.git('gc', '-q');
      const r = await pass({ maxPlainBlobBytes: 4096 });
      expect(r.models.find((m) => m.model === 'cfg')?.outcome).toBe('failed');
      expect(r.errors).toEqual([expect.objectContaining({ code: 'ValidationError', model: 'cfg' })]);
      expect(r.errors[0]!.message).toMatch(/registry\/cfg\/1\/manifest\.yaml:\d+:\d+: .*registry\/cfg\/1\/big\.json is a plain git blob of 7\.8 KiB; files over 4\.0 KiB must be stored with Git LFS/);
      expect(current('cfg')).toBeUndefined();
      expect(current('face')).toBe('2025-01-01'); // the other models go ahead
    }
  });

  it('checks free space before fetching: a model that does not fit fails clearly, nothing of it is downloaded', async () => {
    // A version whose manifest (and LFS pointer) claim 1 TiB: a pointer committed as is, git-lfs keeps it.
    const oid = 'ab'.repeat(32);
    const tib = 2 ** 40;
    reg.write('registry/huge/1/w.bin', `version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${tib}\n`);
    reg.write('registry/huge/1/manifest.yaml', `name: huge\nversion: "1"\nfiles:\n  - {name: w.bin, sha256: ${oid}, size: ${tib}}\n`);
    reg.setCurrent('huge', '1');
    reg.commit('a 1 TiB model');
    const r = await pass();
    const err = r.errors.find((e) => e.model === 'huge')!;
    expect(err).toMatchObject({ code: 'StoreError', retry: 'stalling', data: { needBytes: tib, diskFull: true } });
    expect(err.message).toMatch(/^huge 1 needs 1\.0 TiB on the store's filesystem \(.*\) but only .* are free; nothing of it was downloaded and nothing is active yet/);
    expect(fetchers.flatMap((f) => f.delivered)).not.toContain(oid);
    expect(existsSync(join(store, 'tmp/downloads', `${oid}.part`))).toBe(false);
    expect(current('face')).toBe('2025-01-01');
    expect(current('ssd')).toBe('1');

    // Models are taken in plan order; a partial download already on disk counts as fetched.
    reg.setCurrent('huge', '1');
    reg.setCurrent('face', '2025-02-01');
    reg.setCurrent('ssd', '2');
    reg.commit('promote face and ssd');
    const ssd2 = sha256(bytes(3000, 'd'));
    writeFileSync(join(store, 'tmp/downloads', `${ssd2}.part`), bytes(3000, 'd').subarray(0, 2000));
    const tight = await pass({ freeBytes: async () => 6000 + 1000 });
    expect(tight.errors.map((e) => e.model)).toEqual(['huge']);
    expect(current('face')).toBe('2025-02-01'); // 6000 bytes
    expect(current('ssd')).toBe('2'); // 1000 more
    const tighter = await pass({ freeBytes: async () => 0 });
    expect(tighter.errors.map((e) => e.model)).toEqual(['huge']);
  });

  it('dry run prints the plan and touches nothing: no store, no lock, no state', async () => {
    const r = await pass({ dryRun: true });
    expect(r.dryRun).toBe(true);
    expect(r.models.map((m) => [m.model, m.action, m.outcome])).toEqual([['face', 'fetch', 'planned'], ['ssd', 'fetch', 'planned']]);
    expect(r.bytesPlanned).toBe(5000 + 8 + 3000);
    expect(existsSync(store)).toBe(false);
    await pass();
    const state = readFileSync(join(store, 'state.json'), 'utf8');
    const mtime = statSync(join(store, 'state.json')).mtimeMs;
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote');
    const dry = await pass({ dryRun: true });
    expect(dry.models.find((m) => m.model === 'face')).toMatchObject({ action: 'fetch', reason: 'upgrade', outcome: 'planned' });
    expect(readFileSync(join(store, 'state.json'), 'utf8')).toBe(state);
    expect(statSync(join(store, 'state.json')).mtimeMs).toBe(mtime);
    expect(current('face')).toBe('2025-01-01');
    expect(readdirSync(store).sort()).toEqual(['models', 'objects', 'state.json', 'tmp']);
  });

  it('refuses to run while another live pass holds the lock; takes over a stale one', async () => {
    await pass();
    writeFileSync(join(store, 'lock'), JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), since: 'now', purpose: 'test' }));
    const r = await pass();
    expect(r.status).toBe('failed');
    expect(r.errors[0]).toMatchObject({ code: 'LockedError', retry: 'waiting' });
    // A lock left by a process that is gone (pid 2^22 - 1 is never alive in a test box).
    writeFileSync(join(store, 'lock'), JSON.stringify({ pid: 4194303, host: (await import('node:os')).hostname(), since: 'then', purpose: 'crashed' }));
    const r2 = await pass();
    expect(r2.status).toBe('in-sync');
    expect(existsSync(join(store, 'lock'))).toBe(false);
  });

  it('applies retention after a pass: keeps current, previous and N newest; frees unused objects', async () => {
    for (const v of ['2025-03-01', '2025-04-01', '2025-05-01']) reg.addVersion('face', v, { 'model.bin': bytes(1000, v) });
    reg.site('alpha', { retention: { keep: 1 }, models: ['face'] });
    reg.commit('more versions');
    for (const v of ['2025-02-01', '2025-03-01', '2025-04-01', '2025-05-01']) {
      await pass();
      reg.setCurrent('face', v);
      reg.commit(`promote ${v}`);
    }
    await pass();
    // current 2025-05-01, previous 2025-04-01, keep 1 more: 2025-03-01.
    const versions = readdirSync(join(store, 'models/face')).filter((n) => !['current', 'previous'].includes(n)).sort();
    expect(versions).toEqual(['2025-03-01', '2025-04-01', '2025-05-01']);
    const old = sha256(bytes(5000, 'a'));
    expect(existsSync(join(store, 'objects/sha256', old.slice(0, 2), old.slice(2, 4), old))).toBe(false);
  });

  it('repairs a damaged active version from verified objects', async () => {
    await pass();
    const f = join(store, 'models/face/current/labels.txt');
    const { rmSync } = await import('node:fs');
    rmSync(f);
    const r = await pass();
    expect(r.models.find((m) => m.model === 'face')).toMatchObject({ reason: 'repair', outcome: 'activated' });
    expect(readFileSync(f, 'utf8')).toBe('cat\ndog\n');
    expect(r.changed).toEqual([]); // same version: no service restart needed
  });
});

describe('health-gated activation through the hooks', () => {
  function hooks(unhealthyModels: string[], calls: string[]): ActivationHooks {
    return {
      async afterSwitch(changed) {
        calls.push(`switch:${changed.map((c) => `${c.model}@${c.version}`).join(',')}`);
        for (const c of changed) expect(lstatSync(c.currentDir).isSymbolicLink()).toBe(true);
        return { unhealthy: unhealthyModels.length ? [{ service: 'sentinel', models: unhealthyModels, reason: 'smoke test exited 1' }] : [] };
      },
      async afterRollback(rolledBack) {
        calls.push(`rollback:${rolledBack.map((c) => `${c.model}@${c.version}`).join(',')}`);
      },
    };
  }

  it('switches back an unhealthy model, reports Degraded (exit 4) and does not retry it until the registry changes', async () => {
    const calls: string[] = [];
    await pass({ hooks: hooks([], calls) });
    expect(calls).toEqual(['switch:face@2025-01-01,ssd@1']);
    reg.setCurrent('face', '2025-02-01');
    reg.setCurrent('ssd', '2');
    reg.commit('promote both');
    calls.length = 0;
    const r = await pass({ hooks: hooks(['face'], calls) });
    expect(calls).toEqual(['switch:face@2025-02-01,ssd@2', 'rollback:face@2025-01-01']);
    expect(r.status).toBe('degraded');
    expect(r.exitCode).toBe(4);
    expect(r.degraded).toEqual([expect.objectContaining({ model: 'face', version: '2025-02-01' })]);
    expect(current('face')).toBe('2025-01-01');
    expect(current('ssd')).toBe('2');
    expect(r.changed).toEqual([{ model: 'ssd', from: '1', to: '2' }]);
    const st = await storeStatus(store);
    expect(st.models.find((m) => m.model === 'face')).toMatchObject({ active: '2025-01-01', degraded: { version: '2025-02-01' } });
    expect(st.lastPass?.status).toBe('degraded');

    calls.length = 0;
    const again = await pass({ hooks: hooks([], calls) });
    expect(calls).toEqual([]); // not retried at the same commit
    expect(again.models.find((m) => m.model === 'face')).toMatchObject({ reason: 'degraded', outcome: 'degraded' });
    expect(current('face')).toBe('2025-01-01');

    reg.write('README.md', 'a new commit\n');
    reg.commit('unrelated change');
    const retry = await pass({ hooks: hooks([], calls) });
    expect(calls).toEqual(['switch:face@2025-02-01']);
    expect(retry.status).toBe('changed');
    expect(current('face')).toBe('2025-02-01');
  });

  it('a pass stopped before its services were judged owes the verdict: no rollback, no Degraded; the next pass with services judges it', async () => {
    const calls: string[] = [];
    await pass({ hooks: hooks([], calls) });
    reg.setCurrent('face', '2025-02-01');
    reg.commit('promote face');
    // The agent is told to stop while the health check runs: the check comes back failed because it was cut short.
    const stop = new AbortController();
    const stopped = await pass({
      signal: stop.signal,
      hooks: { ...hooks(['face'], calls), async afterSwitch(changed) {
        stop.abort(new Error('SIGTERM'));
        return hooks(['face'], calls).afterSwitch(changed);
      } },
    });
    expect(stopped.degraded).toEqual([]);
    expect(stopped.status).toBe('changed');
    expect(stopped.warnings.join('\n')).toMatch(/interrupted before the health of face 2025-02-01 was judged/);
    expect(calls.at(-1)).toBe('switch:face@2025-02-01');
    expect(current('face')).toBe('2025-02-01');
    let state = (await readState(new StoreLayout(store))).state;
    expect(state.verifying).toEqual([expect.objectContaining({ model: 'face', version: '2025-02-01', from: '2025-01-01' })]);
    expect(state.models.face?.lastApplied).toBe('2025-01-01');

    expect((await storeStatus(store)).models.find((m) => m.model === 'face')?.verifying).toEqual({ version: '2025-02-01', since: expect.any(String) });
    // A pass without services (the CLI) cannot judge it: the debt stays.
    await pass();
    state = (await readState(new StoreLayout(store))).state;
    expect(state.verifying.map((v) => v.model)).toEqual(['face']);

    // The agent's next pass restarts and checks face again, although nothing changed in the registry.
    calls.length = 0;
    const judged = await pass({ hooks: hooks([], calls) });
    expect(calls).toEqual(['switch:face@2025-02-01']);
    expect(judged.changed).toEqual([{ model: 'face', from: '2025-01-01', to: '2025-02-01' }]);
    state = (await readState(new StoreLayout(store))).state;
    expect(state.verifying).toEqual([]);
    expect(state.models.face?.lastApplied).toBe('2025-02-01');
    calls.length = 0;
    await pass({ hooks: hooks([], calls) });
    expect(calls).toEqual([]);
  });

  it('a first install that fails its health check stays active and stays Degraded at that commit (not "in sync")', async () => {
    const calls: string[] = [];
    const first = await pass({ hooks: hooks(['face'], calls) });
    expect(first.status).toBe('degraded');
    expect(first.warnings.join('\n')).toMatch(/no earlier version to go back to/);
    expect(current('face')).toBe('2025-01-01');
    calls.length = 0;
    const again = await pass({ hooks: hooks([], calls) });
    expect(calls).toEqual([]);
    expect(again.status).toBe('degraded');
    expect(again.exitCode).toBe(4);
    expect(again.models.find((m) => m.model === 'face')).toMatchObject({ reason: 'degraded', outcome: 'degraded', active: '2025-01-01' });
    expect((await storeStatus(store)).models.find((m) => m.model === 'face')?.degraded?.version).toBe('2025-01-01');
  });
});

describe('a bare repository as the registry', () => {
  it('is read directly at the branch commit', async () => {
    const bare = join(tempDir('bare-'), 'registry.git');
    reg.git('clone', '-q', '--bare', reg.dir, bare);
    // A bare repository serving LFS keeps objects in its own git-lfs cache (as the hub does).
    const { cpSync } = await import('node:fs');
    cpSync(join(reg.dir, '.git/lfs'), join(bare, 'lfs'), { recursive: true });
    const r = await reconcile({ site: 'alpha', registry: bare, store, fetcher: localFetcherFactory() });
    expect(r.errors).toEqual([]);
    expect(r.commit).toBe(reg.head());
    expect(current('face')).toBe('2025-01-01');
    expect(existsSync(join(store, 'registry.git'))).toBe(false); // nothing copied for a local path
  });

  it('names a missing branch', async () => {
    const r = await pass({ branch: 'release' });
    expect(r.errors[0]!.message).toMatch(/branch "release" does not exist/);
  });
});

describe('CLI-independent failure cases', () => {
  it('a missing registry path is a clear error and creates no models', async () => {
    const r = await reconcile({ site: 'alpha', registry: join(tempDir(), 'nope'), store, fetcher: localFetcherFactory() });
    expect(r.status).toBe('failed');
    expect(r.errors[0]!.code).toBe('NotFoundError');
    expect(r.errors[0]!.message).toMatch(/not a Git repository/);
    mkdirSync(store, { recursive: true });
  });

  it('refuses ssh registries with a usage error', async () => {
    for (const registry of ['git@example.test:fleet/registry.git', 'ssh://git@example.test/registry.git']) {
      const r = await reconcile({ site: 'alpha', registry, store, fetcher: localFetcherFactory() });
      expect(r.errors[0]).toMatchObject({ code: 'UsageError' });
      expect(r.errors[0]!.message).toMatch(/only http\(s\) URLs and local paths/);
    }
  });

  it('an unknown site is a clear error', async () => {
    const r = await reconcile({ site: 'zeta', registry: reg.dir, store, fetcher: localFetcherFactory() });
    expect(r.errors[0]!.message).toMatch(/site "zeta" is not declared/);
  });
});
