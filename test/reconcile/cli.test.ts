/**
 * The store commands as an operator types them: reconcile (plan, apply,
 * JSON), status --store, pin / unpin, gc, against a local registry built with
 * stock git + git-lfs (objects come from its git-lfs cache).
 */
import { existsSync, mkdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from './helpers/registry.ts';

const env = isolatedGitEnv();
let reg: TestRegistry;
let store: string;
const run = (...args: string[]) => cli(args, { cwd: reg.dir, env });

beforeAll(() => {
  reg = TestRegistry.init(tempDir('cli-reg-'), env);
  for (const v of ['1', '2', '3', '4']) reg.addVersion('ssd', v, { 'w.bin': `weights ${v}\n`.repeat(100) });
  reg.setCurrent('ssd', '1');
  reg.site('alpha', { retention: { keep: 1 } });
  reg.commit('ssd 1');
  store = join(tempDir('cli-store-'), 'store');
});

describe('modelsync reconcile / status / pin / gc', () => {
  it('plans with --dry-run, applies, then reports in sync', () => {
    const dry = cli(['reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--dry-run'], { cwd: reg.dir, env: { ...env, MODELSYNC_LOG_LEVEL: 'info' } });
    expect(dry.status).toBe(0);
    expect(dry.stdout).toMatch(/^dry run: site alpha/);
    expect(dry.stdout).toMatch(/ssd\s+- → 1\s+would apply \(install\)/);
    // The summary says what the pass would do, not "in sync, 0 changed".
    expect(dry.stdout).toMatch(/^plan: ok \(would change 1 model \(ssd - → 1\), 1000 B to fetch, /m);
    const summary = JSON.parse(dry.stderr.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(summary).toMatchObject({ msg: 'reconcile dry run (nothing applied)', dryRun: true, status: 'changed', wouldChange: ['ssd:-→1'], bytesToFetch: 1000 });
    expect(summary).not.toHaveProperty('changed');
    const dryJson = JSON.parse(run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--dry-run', '--json').stdout);
    expect(dryJson).toMatchObject({ dryRun: true, status: 'changed', exitCode: 0, changed: [{ model: 'ssd', to: '1' }], bytesPlanned: 1000 });
    expect(existsSync(store)).toBe(false);

    const apply = run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store);
    expect(apply.status).toBe(0);
    expect(apply.stdout).toMatch(/ssd\s+- → 1\s+activated \(install\)/);
    expect(apply.stdout).toMatch(/status: changed \(1 changed/);
    expect(apply.stderr).toBe(''); // the summary line is info level; tests log at warn

    const again = run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--json');
    expect(again.status).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'in-sync', exitCode: 0, bytesFetched: 0, commit: reg.head() });
    const dryInSync = run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--dry-run');
    expect(dryInSync.stdout).toMatch(/^plan: in sync, nothing to do \(/m);
  });

  it('shows the store with status --store, including a pin as drift', () => {
    expect(run('pin', 'ssd', '2', '--store', store).stdout).toMatch(/pinned ssd to 2/);
    const r = run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store);
    expect(r.stdout).toMatch(/pinned to 2 on this site \(registry declares 1\)/);
    expect(readlinkSync(join(store, 'models/ssd/current'))).toBe('2');
    const status = run('status', '--store', store);
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(/site alpha/);
    expect(status.stdout).toMatch(/ssd\s+1\s+2\s+1\s+pinned 2/);
    expect(status.stdout).toMatch(/last pass: changed/);
    expect(status.stdout).toMatch(/registry last reached: .*ago/);
    const json = JSON.parse(run('status', '--store', store, '--json').stdout);
    expect(json.models[0]).toMatchObject({ model: 'ssd', declared: '1', active: '2', pinned: '2' });
    expect(typeof json.staleSeconds).toBe('number');
    expect(run('unpin', 'ssd', '--store', store).stdout).toMatch(/unpinned ssd \(was 2\)/);
  });

  it('exits 3 on a conflict and 0 with --force', () => {
    const r = run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store);
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/ssd\s+2\s+CONFLICT \(conflict\)/);
    const st = run('status', '--store', store);
    expect(st.stdout).toMatch(/CONFLICT: active 2 newer than declared 1/);
    expect(st.status).toBe(3);
    expect(run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--force').status).toBe(0);
    expect(readlinkSync(join(store, 'models/ssd/current'))).toBe('1');
  });

  it('gc keeps current, previous and N newest and reports bytes freed', () => {
    for (const v of ['3', '4']) run('pin', 'ssd', v, '--store', store), run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--force');
    run('unpin', 'ssd', '--store', store);
    run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--force');
    // current 1, previous 4; retention keep 1 ran after the pass: 3 kept (newest other), 2 gone.
    const versions = () => ['1', '2', '3', '4'].filter((v) => existsSync(join(store, 'models/ssd', v)));
    expect(versions()).toEqual(['1', '3', '4']);
    const dry = JSON.parse(run('gc', '--store', store, '--keep', '0', '--dry-run', '--json').stdout);
    expect(dry).toMatchObject({ dryRun: true, keep: 0, versionsRemoved: [{ model: 'ssd', version: '3' }], objectsRemoved: 1, bytesFreed: 1000 });
    expect(versions()).toEqual(['1', '3', '4']);
    const real = run('gc', '--store', store, '--keep', '0');
    expect(real.status).toBe(0);
    expect(real.stdout).toMatch(/removed 1 version and 1 object; freed 1000 B/);
    expect(versions()).toEqual(['1', '4']);
  });

  it('a model the site stops selecting stays as it is, reported unmanaged; gc removes it only with --unmanaged', () => {
    const store2 = join(tempDir('cli-unmanaged-'), 'store');
    const r2 = TestRegistry.init(tempDir('cli-unmanaged-reg-'), env);
    r2.addVersion('ssd', '1', { 'w.bin': 'ssd weights\n'.repeat(100) });
    r2.addVersion('face', '1', { 'f.bin': 'face weights\n'.repeat(100) });
    r2.setCurrent('ssd', '1');
    r2.setCurrent('face', '1');
    r2.site('alpha', {});
    r2.commit('two models');
    const rec = () => cli(['reconcile', '--site', 'alpha', '--registry', '.', '--store', store2], { cwd: r2.dir, env });
    expect(rec().status).toBe(0);
    r2.site('alpha', { models: ['face'] });
    r2.commit('alpha no longer runs ssd');
    const after = rec();
    expect(after.status).toBe(0);
    expect(after.stdout).toMatch(/ssd: no longer selected by the site; left as is \(1 stays current\), unmanaged \(modelsync gc --unmanaged removes it\)/);
    expect(readlinkSync(join(store2, 'models/ssd/current'))).toBe('1');
    const status = cli(['status', '--store', store2], { cwd: r2.dir, env });
    expect(status.stdout).toMatch(/ssd\s+1\s+1\s+-\s+unmanaged: the site no longer selects it \(since /);
    expect(JSON.parse(cli(['status', '--store', store2, '--json'], { cwd: r2.dir, env }).stdout).models.find((m: { model: string }) => m.model === 'ssd')).toMatchObject({ active: '1', unmanaged: { since: expect.any(String) } });

    // Plain gc keeps it (current is never collected); --unmanaged removes the model and frees its objects.
    expect(JSON.parse(cli(['gc', '--store', store2, '--json'], { cwd: r2.dir, env }).stdout)).toMatchObject({ modelsRemoved: [], objectsRemoved: 0 });
    cli(['pin', 'ssd', '1', '--store', store2], { cwd: r2.dir, env });
    const pinned = cli(['gc', '--store', store2, '--unmanaged'], { cwd: r2.dir, env });
    expect(pinned.stdout).toMatch(/kept ssd: no longer selected, but pinned on this site/);
    expect(existsSync(join(store2, 'models/ssd'))).toBe(true);
    cli(['unpin', 'ssd', '--store', store2], { cwd: r2.dir, env });
    const dry = JSON.parse(cli(['gc', '--store', store2, '--unmanaged', '--dry-run', '--json'], { cwd: r2.dir, env }).stdout);
    expect(dry).toMatchObject({ dryRun: true, modelsRemoved: ['ssd'], objectsRemoved: 1, bytesFreed: 1200 });
    const real = cli(['gc', '--store', store2, '--unmanaged'], { cwd: r2.dir, env });
    expect(real.status).toBe(0);
    expect(real.stdout).toMatch(/removed ssd \(no longer selected by the site\), current included/);
    expect(real.stdout).toMatch(/removed 1 model, 0 versions and 1 object; freed 1\.2 KiB/);
    expect(existsSync(join(store2, 'models/ssd'))).toBe(false);
    expect(readlinkSync(join(store2, 'models/face/current'))).toBe('1');
    expect(cli(['status', '--store', store2], { cwd: r2.dir, env }).stdout).not.toMatch(/ssd/);
    expect(rec().stdout).not.toMatch(/no longer selected/);
  });

  it('gc --unmanaged refuses to guess before any pass recorded the selection', () => {
    const empty = join(tempDir('cli-unmanaged-empty-'), 'store');
    mkdirSync(join(empty, 'models/old/1'), { recursive: true });
    const r = cli(['gc', '--store', empty, '--unmanaged'], { cwd: reg.dir, env });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no pass has recorded what this site selects yet/);
    expect(existsSync(join(empty, 'models/old/1'))).toBe(true);
  });

  it('rejects bad usage with exit 2', () => {
    expect(run('reconcile', '--site', 'alpha', '--registry', '.', '--store', store, '--concurrency', '0').status).toBe(2);
    expect(run('gc', '--store', store, '--keep', '-1').status).toBe(2);
    expect(run('reconcile', '--site', 'alpha', '--registry', 'git@example.test:fleet/registry.git', '--store', store).status).toBe(2);
    expect(run('pin', 'ssd', 'current', '--store', store).status).toBe(2);
    const neither = run('status');
    expect(neither.status).toBe(2);
    expect(neither.stderr).toMatch(/--store/);
  });
});
