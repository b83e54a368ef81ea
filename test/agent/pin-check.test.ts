/**
 * `pin` checks what it pins against the registry the store last applied
 * (issue 9 item 9): a model the registry does not declare or a version it
 * does not publish is refused with a did-you-mean and pins nothing; with no
 * registry known to the store it pins, saying loudly that it could not check.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current, startAgent } from './helpers/agent.ts';

const env = isolatedGitEnv();

describe('pin checks the registry', () => {
  it('refuses an undeclared model or an unpublished version with a did-you-mean; a running agent does nothing', async () => {
    const reg = TestRegistry.init(tempDir('pin-reg-'), env);
    reg.addVersion('face_recognition', '2025-01-01', { 'model.bin': bytes(10_000, 1) });
    reg.addVersion('face_recognition', '2025-02-01', { 'model.bin': bytes(10_000, 2) });
    reg.setCurrent('face_recognition', '2025-01-01');
    reg.site('alpha', {});
    reg.commit('v1');
    const dir = tempDir('pin-');
    const store = join(dir, 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, schedule: '0 0 1 1 *' }, { watchDebounceMs: 50 });
    await agent.whenIdle();
    const passes = agent.passes;

    const typo = await cliAsync(['pin', 'face_recogniton', '2025-02-01', '--store', store], { cwd: dir, env });
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(/face_recogniton is not a model of the registry at [0-9a-f]{12} \(the last commit this store applied\) \(did you mean "face_recognition"\?\); declared: face_recognition/);
    const version = await cliAsync(['pin', 'face_recognition', '2025-02-02', '--store', store], { cwd: dir, env });
    expect(version.status).toBe(2);
    expect(version.stderr).toMatch(/face_recognition 2025-02-02 is not published in the registry at [0-9a-f]{12} .*\(did you mean "2025-02-01"\?\); published: 2025-01-01, 2025-02-01/);
    // Nothing pinned: no pins.json, no pass.
    expect(existsSync(join(store, 'pins.json'))).toBe(false);
    await new Promise((r) => setTimeout(r, 300));
    expect(agent.passes).toBe(passes);

    const good = await cliAsync(['pin', 'face_recognition', '2025-02-01', '--store', store], { cwd: dir, env });
    expect(good.status).toBe(0);
    expect(good.stdout).not.toMatch(/WARNING/);
    expect(JSON.parse(readFileSync(join(store, 'pins.json'), 'utf8'))).toMatchObject({ pins: { face_recognition: { version: '2025-02-01' } } });
    await agent.stop();
  });

  it('with no registry known to the store, pins but warns loudly', async () => {
    const dir = tempDir('pin-empty-');
    const store = join(dir, 'store');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(store);
    const r = await cliAsync(['pin', 'face', '1', '--store', store], { cwd: dir, env });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^WARNING: cannot check the pin against the registry \(no pass has read a registry into this store yet\); if face 1 is not in the registry, the next pass fails for it/);
    expect(current(store, 'face')).toBeUndefined();
  });
});
