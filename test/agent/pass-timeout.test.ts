/**
 * `pass_timeout` (issue 9 item 5): a real agent whose LFS server keeps
 * stalling stops the pass at its deadline, says why on /status, releases
 * the store lock and keeps the partial download, which the next pass
 * resumes instead of fetching again.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reconcile } from '../../src/reconcile/index.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { LfsTestServer } from '../lfs/server.ts';
import { TestRegistry, sha256 } from '../reconcile/helpers/registry.ts';
import { bytes, current, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const servers: LfsTestServer[] = [];
afterAll(async () => void (await Promise.all(servers.map((s) => s.close()))));

describe('pass_timeout', () => {
  it('stops a stalled pass at the deadline, releases the lock, keeps the partial and the next pass resumes it', async () => {
    const lfs = await LfsTestServer.start();
    servers.push(lfs);
    const content = bytes(400_000, 3);
    const oid = sha256(content);
    lfs.add(content);
    // Every download sends 150 kB and then goes silent (well under the 60 s idle timeout).
    lfs.fault(oid, ...Array.from({ length: 20 }, () => ({ stallAfter: 150_000 })));

    const reg = TestRegistry.init(tempDir('modelsync-deadline-'), env);
    reg.addVersion('face', '1', { 'model.bin': content });
    reg.setCurrent('face', '1');
    reg.site('alpha', { models: ['face'] });
    reg.write('.lfsconfig', `[lfs]\n\turl = ${lfs.lfsUrl}\n`);
    reg.commit('v1');
    // Not in the registry's own LFS cache: it must come from the (stalling) server.
    rmSync(reg.lfsObject(oid));
    const store = tempDir('modelsync-deadline-store-');

    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, pass_timeout: '2s', schedule: '0 0 1 1 *' });
    await waitFor(() => agent.status().lastPass !== null, 'the first pass', 30_000);
    const s = agent.status();
    expect(s.lastPass!.status).toBe('failed');
    expect(s.lastPass!.errors[0]!.code).toBe('PassTimeoutError');
    expect(s.lastPass!.errors[0]!.message).toMatch(/ran past its deadline \(pass_timeout 2\.0 s\) during fetch-objects and stopped; .*partial downloads are kept/);
    expect(s.lastError).toMatch(/^PassTimeoutError: /);
    // Stopped at the deadline, not after the 60 s a stalled body is given.
    expect(s.lastPass!.durationMs).toBeGreaterThanOrEqual(1900);
    expect(s.lastPass!.durationMs).toBeLessThan(10_000);
    expect(current(store, 'face')).toBeUndefined();
    // Lock released; the partial download kept.
    expect(existsSync(join(store, 'lock'))).toBe(false);
    const parts = readdirSync(join(store, 'tmp', 'downloads')).filter((n) => n.startsWith(oid));
    expect(parts).toHaveLength(1);
    const kept = statSync(join(store, 'tmp', 'downloads', parts[0]!)).size;
    expect(kept).toBeGreaterThanOrEqual(150_000);
    await agent.stop();

    // The server recovers: the next pass resumes from the partial (fetches only the rest).
    lfs.faults.clear();
    const r = await reconcile({ site: 'alpha', registry: reg.dir, store, timeoutMs: 30_000 });
    expect(r.status).toBe('changed');
    expect(current(store, 'face')).toBe('1');
    expect(r.bytesFetched).toBe(content.length - kept);
  });

  it('cuts a health check short at the deadline: the switch stays, the verdict is owed, nothing is marked Degraded', async () => {
    const reg = TestRegistry.init(tempDir('modelsync-deadline-hc-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(10_000, 1) });
    reg.setCurrent('face', '1');
    reg.site('alpha', { models: ['face'] });
    reg.commit('v1');
    const store = tempDir('modelsync-deadline-hc-store-');
    // A health check that never passes within its own 60 s.
    const services = [{ name: 'stuck', models: ['face'], restart: [process.execPath, '-e', 'process.exit(0)'], health: { command: [process.execPath, '-e', 'process.exit(1)'], timeout_s: 60, interval_s: 0.2 } }];
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, services, pass_timeout: 3, schedule: '0 0 1 1 *' });
    await waitFor(() => agent.status().lastPass !== null, 'the first pass', 30_000);
    const s = agent.status();
    expect(s.lastPass!.errors[0]).toMatchObject({ code: 'PassTimeoutError' });
    expect(s.lastPass!.durationMs).toBeLessThan(15_000);
    expect(s.health).not.toBe('Degraded');
    expect(s.lastPass!.degraded).toEqual([]);
    expect(current(store, 'face')).toBe('1');
    expect(s.models.find((m) => m.model === 'face')?.verdictOwed).toMatchObject({ version: '1' });
    expect(s.services.at(-1)?.health).toMatchObject({ aborted: true, message: expect.stringMatching(/the pass reached its deadline \(pass_timeout\); the verdict is owed/) });
    await agent.stop();
  });
});
