/**
 * A site mirror end to end (issue 15): an upstream hub, a mirror
 * (`startHub({mirror})`, what `serve --mirror` runs) and three real agents
 * behind it that know only the mirror's URLs. A publish upstream reaches all
 * three through the mirror; the upstream serves each LFS object once (its own
 * /metrics count the downloads); the local agents' reports appear upstream;
 * with the upstream stopped the site keeps being served and its reports
 * queue, and they arrive when it is back. Pushes to the mirror are refused,
 * and an object the upstream sends wrong is neither stored nor served.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PassOutcome } from '../../src/agent/daemon.ts';
import { startHub, type Hub } from '../../src/hub/index.ts';
import { lfsObjectRelPath } from '../../src/registry/lfs-pointer.ts';
import { bytes, captureLogger, current, startAgent, waitFor } from '../agent/helpers/agent.ts';
import { gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { sha256 } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

const env = isolatedGitEnv();
const SITES = ['north-1', 'north-2', 'north-3'];
const SIZE = 300_000;

function tokensFile(entries: Array<{ name: string; role: string; sites?: string[] }>): { file: string; secrets: Record<string, string> } {
  const secrets: Record<string, string> = {};
  const lines = ['tokens:'];
  for (const e of entries) {
    secrets[e.name] = randomBytes(24).toString('base64url');
    lines.push(`  - {name: ${e.name}, sha256: ${sha256(secrets[e.name]!)}, role: ${e.role}${e.sites ? `, sites: [${e.sites.join(', ')}]` : ''}}`);
  }
  const file = join(tempDir('mirror-tokens-'), 'tokens.yaml');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return { file, secrets };
}

/** `name{labels} value` from a Prometheus page (0 when absent). */
function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((p) => l.includes(p)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('site mirror', () => {
  it('serves a site from one upstream fetch per object, forwards reports, rides out the upstream being down, refuses pushes and bad objects', async () => {
    // ---- the upstream hub, with a token for the mirror that may report for the three sites ----
    const upTokens = tokensFile([{ name: 'root', role: 'admin' }, { name: 'ci', role: 'publisher' }, { name: 'mirror-north', role: 'site', sites: SITES }]);
    const upData = join(tempDir('mirror-up-'), 'data');
    let upstream: Hub = await startHub({ data: upData, listen: '127.0.0.1:0', tokensFile: upTokens.file });
    const upPort = new URL(upstream.url).port;
    const admin = { authorization: `Bearer ${upTokens.secrets.root}` };
    const upMetrics = async (): Promise<string> => (await fetch(`${upstream.url}/metrics`)).text();

    const reg = TestRegistry.init(tempDir('mirror-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(SIZE, 1) });
    reg.setCurrent('face', '1');
    for (const s of SITES) reg.site(s, {});
    reg.commit('v1');
    reg.git('remote', 'add', 'origin', `http://ci:${upTokens.secrets.ci}@127.0.0.1:${upPort}/registry.git`);
    await gitAsync(['push', '-q', '-u', 'origin', 'main'], { cwd: reg.dir, env });

    // ---- the mirror, with its own tokens for the local agents ----
    const local = tokensFile(SITES.map((s) => ({ name: s, role: 'site', sites: [s] })));
    const upTokenFile = join(tempDir('mirror-uptoken-'), 'token');
    writeFileSync(upTokenFile, `${upTokens.secrets['mirror-north']}\n`, { mode: 0o600 });
    const mirrorData = join(tempDir('mirror-data-'), 'data');
    const fast = { retryBaseMs: 100, retryMaxMs: 400, eventsBackoffBaseMs: 50, eventsBackoffMaxMs: 200, reportsBackoffBaseMs: 100, reportsBackoffMaxMs: 400, lfsRetry: { retries: 1, baseDelayMs: 10, maxDelayMs: 20 }, name: 'datasink-north' };
    const log = captureLogger();
    const mirror = await startHub({ data: mirrorData, listen: '127.0.0.1:0', tokensFile: local.file, logger: log.logger, mirror: { upstream: `${upstream.url}/registry.git`, tokenFile: upTokenFile, ...fast } });
    const m = mirror.mirror!;
    try {
      await waitFor(() => m.status().lastSyncAt !== null && m.status().following, 'the mirror to sync and follow the upstream');

      // ---- three agents that know only the mirror ----
      const outcomes = new Map<string, PassOutcome[]>(SITES.map((s) => [s, []]));
      const stores = new Map(SITES.map((s) => [s, join(tempDir(`mirror-store-${s}-`), 'store')]));
      const agentFor = (site: string) =>
        startAgent(
          { site, registry: `${mirror.url}/registry.git`, hub: mirror.url, store: stores.get(site)! },
          { env: { MODELSYNC_TOKEN: local.secrets[site]! }, onPass: (o) => outcomes.get(site)!.push(o) },
        );
      const agents = new Map([[SITES[0]!, await agentFor(SITES[0]!)], [SITES[1]!, await agentFor(SITES[1]!)], [SITES[2]!, await agentFor(SITES[2]!)]]);
      for (const [site, a] of agents) {
        await a.whenIdle();
        expect(current(stores.get(site)!, 'face'), site).toBe('1');
        await waitFor(() => a.status().hub?.connected === true, `${site}'s event stream at the mirror`);
      }

      // ---- publish upstream: all three converge through the mirror ----
      let pushedAt = 0;
      let mirroredAt = 0;
      upstream.events.once('ref', () => (pushedAt = Date.now()));
      mirror.events.once('ref', () => (mirroredAt = Date.now()));
      reg.addVersion('face', '2', { 'model.bin': bytes(SIZE, 2) });
      reg.setCurrent('face', '2');
      reg.commit('face 2');
      await gitAsync(['push', '-q', 'origin', 'main'], { cwd: reg.dir, env });
      const head2 = reg.head();
      const done = (site: string): PassOutcome | undefined => outcomes.get(site)!.find((o) => o.result.commit === head2 && o.result.changed.length > 0);
      await waitFor(() => SITES.every((s) => done(s) !== undefined), 'all three agents to apply face 2');
      const converged = Math.max(...SITES.map((s) => done(s)!.finishedAt)) - pushedAt;
      console.log(`upstream push -> 3 agents behind the mirror active on the new version: ${converged} ms (the mirror's re-emitted event after ${mirroredAt - pushedAt} ms; per agent: ${SITES.map((s) => `${done(s)!.finishedAt - pushedAt} ms`).join(', ')})`);
      for (const s of SITES) {
        expect(current(stores.get(s)!, 'face')).toBe('2');
        // Woken by the mirror's re-emitted event, and the objects were there: one pass, no retry.
        expect(done(s)!.triggers.map((t) => t.source)).toEqual(['event']);
        expect(readFileSync(join(stores.get(s)!, 'models/face/current/model.bin')).equals(bytes(SIZE, 2))).toBe(true);
      }
      // Generous slack over the issue's "within a second" (bench/mirror.bench.ts measures it): on a
      // shared 2-core machine running other test files this took 0.4-4.3 s. What must hold is that the
      // mirror's event, not its 60 s schedule, brought the change (the triggers above).
      expect(converged).toBeLessThan(15_000);

      // ---- the upstream served each object exactly once ----
      const text = await upMetrics();
      expect(metric(text, 'modelsync_hub_http_requests_total', 'route="lfs-download",method="GET",code="200"')).toBe(2);
      expect(metric(text, 'modelsync_hub_http_requests_total', 'route="lfs-download",code="206"')).toBe(0);
      const sent = metric(text, 'modelsync_hub_http_sent_bytes_total', 'route="lfs-download"');
      expect(sent).toBeGreaterThanOrEqual(2 * SIZE);
      expect(sent).toBeLessThan(2 * SIZE + 2 * 1024); // the two bodies and their headers, nothing else
      const mirrorMetrics = await (await fetch(`${mirror.url}/metrics`)).text();
      expect(mirrorMetrics).toMatch(/^modelsync_mirror_objects_fetched_total 2$/m);
      expect(mirrorMetrics).toMatch(new RegExp(`^modelsync_mirror_fetched_bytes_total ${2 * SIZE}$`, 'm'));
      // While the mirror's own LFS route served the three agents their copies.
      expect(metric(mirrorMetrics, 'modelsync_hub_http_requests_total', 'route="lfs-download",method="GET",code="200"')).toBe(6);

      // ---- the agents' reports reached the upstream through the mirror ----
      const upSites = async (): Promise<Array<{ site: string; commit?: string; health?: string; receivedAt: string; via?: { mirror: string; receivedAt: string } }>> =>
        ((await (await fetch(`${upstream.url}/api/v1/sites`, { headers: admin })).json()) as { sites: never[] }).sites;
      await waitFor(async () => (await upSites()).filter((s) => s.commit === head2 && s.health === 'Ready').length === 3, 'three Ready sites upstream');
      expect((await upSites()).map((s) => [s.site, s.via?.mirror])).toEqual(SITES.map((s) => [s, 'datasink-north']));

      // ---- a push to the mirror is refused, naming the upstream ----
      const mirrorHost = new URL(mirror.url).host;
      const push = await gitAsync(['push', `http://x:${local.secrets['north-1']}@${mirrorHost}/registry.git`, 'main:refs/heads/other'], { cwd: reg.dir, env, allowFail: true });
      expect(push.status).not.toBe(0);
      expect(push.stderr).toContain(`read-only mirror of ${upstream.url}/registry.git`);
      const upload = await fetch(`${mirror.url}/registry.git/info/lfs/objects/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${local.secrets['north-1']}`, 'content-type': 'application/vnd.git-lfs+json' },
        body: JSON.stringify({ operation: 'upload', objects: [{ oid: 'a'.repeat(64), size: 1 }] }),
      });
      expect(upload.status).toBe(403);
      expect(((await upload.json()) as { code: string }).code).toBe('ReadOnlyMirror');
      const put = await fetch(`${mirror.url}/registry.git/info/lfs/objects/${'a'.repeat(64)}`, { method: 'PUT', body: 'x' });
      expect(put.status).toBe(403);

      // ---- the upstream goes away: the site is still served, reports queue ----
      await upstream.close();
      const stoppedAt = Date.now();
      await waitFor(() => !m.status().following, 'the mirror to notice the upstream is gone');
      const a3 = agents.get('north-3')!;
      await a3.stop();
      rmSync(stores.get('north-3')!, { recursive: true, force: true });
      const fresh = await agentFor('north-3');
      agents.set('north-3', fresh);
      await fresh.whenIdle();
      expect(current(stores.get('north-3')!, 'face')).toBe('2');
      expect(fresh.status().health).toBe('Ready');
      expect(readFileSync(join(stores.get('north-3')!, 'models/face/current/model.bin')).equals(bytes(SIZE, 2))).toBe(true);
      await waitFor(() => m.status().reportsQueued >= 1 && m.status().reportsError !== null, 'the fresh agent\'s report to queue at the mirror');
      expect(m.status().reportsError).toMatch(/cannot reach the upstream/);
      const queuedAt = mirror.sites.get('north-3')!.receivedAt;
      expect(Date.parse(queuedAt)).toBeGreaterThan(stoppedAt);

      // ---- the upstream is back: the queued reports arrive ----
      upstream = await startHub({ data: upData, listen: `127.0.0.1:${upPort}`, tokensFile: upTokens.file });
      // What the mirror holds of north-3 now (its agent may have reported again meanwhile) is what arrives.
      await waitFor(async () => (await upSites()).find((s) => s.site === 'north-3')?.via?.receivedAt === mirror.sites.get('north-3')!.receivedAt, `the queued report to arrive upstream (${JSON.stringify(m.status())})`);
      await waitFor(() => m.status().reportsQueued === 0, 'the outbox to empty');
      // Upstream, the site is as stale as the older of its own contact and the mirror's last sync.
      const arrived = (await upSites()).find((s) => s.site === 'north-3') as unknown as { stalenessSeconds: number; receivedAt: string; via: { lastSyncAt: string } };
      expect(arrived.via.lastSyncAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(arrived.stalenessSeconds).toBeGreaterThanOrEqual(Math.floor((Date.parse(arrived.receivedAt) - Date.parse(arrived.via.lastSyncAt)) / 1000) - 1);

      // ---- an object the upstream sends wrong is refused and not served ----
      await waitFor(() => m.status().following && m.status().lastError === null, 'the mirror to follow the restarted upstream');
      const good = bytes(SIZE, 3);
      const oid3 = createHash('sha256').update(good).digest('hex');
      reg.addVersion('face', '3', { 'model.bin': good });
      expect(oid3).toMatch(/^[0-9a-f]{64}$/);
      reg.setCurrent('face', '3');
      reg.commit('face 3');
      // The object goes up first and is then damaged on the upstream's disk; the ref push follows.
      await gitAsync(['lfs', 'push', 'origin', 'main'], { cwd: reg.dir, env });
      const upObject = join(upData, 'repos/registry.git', lfsObjectRelPath(oid3));
      const bad = Buffer.from(good);
      bad.writeUInt8(bad.readUInt8(1000) ^ 0xff, 1000);
      writeFileSync(upObject, bad);
      await gitAsync(['push', '-q', 'origin', 'main'], { cwd: reg.dir, env });
      const head3 = reg.head();
      await waitFor(() => m.status().failedObjects.includes(oid3), 'the mirror to refuse the damaged object');
      expect(m.status().lastError).toMatch(/held back/);
      expect(existsSync(join(mirrorData, 'repos/registry.git', lfsObjectRelPath(oid3)))).toBe(false);
      const batch = await fetch(`${mirror.url}/registry.git/info/lfs/objects/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${local.secrets['north-1']}`, 'content-type': 'application/vnd.git-lfs+json' },
        body: JSON.stringify({ operation: 'download', objects: [{ oid: oid3, size: SIZE }] }),
      });
      expect(((await batch.json()) as { objects: Array<{ error?: { code: number } }> }).objects[0]!.error?.code).toBe(404);
      // The commit that needs it is not shown to local agents, so they stay on what works.
      const refs = await gitAsync(['ls-remote', `http://x:${local.secrets['north-1']}@${mirrorHost}/registry.git`], { cwd: reg.dir, env });
      expect(refs.stdout).toContain(`${head2}\trefs/heads/main`);
      expect(refs.stdout).not.toContain(head3);
      expect(refs.stdout).not.toContain('refs/mirror/');
      for (const s of SITES) expect(current(stores.get(s)!, 'face')).toBe('2');

      // Repaired upstream: the next retry brings it in and the site converges.
      writeFileSync(upObject, good);
      await waitFor(() => SITES.every((s) => current(stores.get(s)!, 'face') === '3'), 'all three agents to apply face 3', 30_000);
      expect(readFileSync(join(mirrorData, 'repos/registry.git', lfsObjectRelPath(oid3))).equals(good)).toBe(true);
      for (const a of agents.values()) await a.stop();
      expect(log.text()).toContain('the upstream sent an LFS object that does not match its sha256');
      expect(log.text()).not.toContain(upTokens.secrets['mirror-north']);
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });

  it('starts with the upstream down and catches up when it comes; a report the upstream refuses for good is dropped, not retried forever; reports owed survive a mirror restart', async () => {
    const upTokens = tokensFile([{ name: 'ci', role: 'publisher' }, { name: 'mirror-north', role: 'site', sites: ['north-1'] }]);
    const upData = join(tempDir('mirror-up-'), 'data');
    let upstream: Hub = await startHub({ data: upData, listen: '127.0.0.1:0', tokensFile: upTokens.file });
    const upPort = new URL(upstream.url).port;
    const reg = TestRegistry.init(tempDir('mirror-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(50_000, 1) });
    reg.setCurrent('face', '1');
    reg.site('north-1', {});
    reg.commit('v1');
    reg.git('remote', 'add', 'origin', `http://ci:${upTokens.secrets.ci}@127.0.0.1:${upPort}/registry.git`);
    await gitAsync(['push', '-q', '-u', 'origin', 'main'], { cwd: reg.dir, env });
    await upstream.close();

    const local = tokensFile([{ name: 'north-1', role: 'site', sites: ['north-1'] }, { name: 'south-9', role: 'site', sites: ['south-9'] }]);
    const log = captureLogger();
    const mirrorData = join(tempDir('mirror-data-'), 'data');
    const startMirror = (): Promise<Hub> => startHub({
      data: mirrorData, listen: '127.0.0.1:0', tokensFile: local.file, logger: log.logger,
      mirror: { upstream: `http://x:${upTokens.secrets['mirror-north']}@127.0.0.1:${upPort}/registry.git`, retryBaseMs: 100, retryMaxMs: 300, eventsBackoffBaseMs: 50, eventsBackoffMaxMs: 200, reportsBackoffBaseMs: 100, reportsBackoffMaxMs: 300 },
    });
    let mirror = await startMirror();
    let m = mirror.mirror!;
    try {
      await waitFor(() => m.status().lastError !== null, 'the first sync to fail');
      expect(m.status().lastError).toMatch(/git fetch http:\/\/127\.0\.0\.1:\d+\/registry\.git failed/);
      expect(m.status().lastSyncAt).toBeNull();
      // Nothing to serve yet, and nothing half-served: the mirror's repository has no branch.
      const empty = await gitAsync(['ls-remote', `http://x:${local.secrets['north-1']}@${new URL(mirror.url).host}/registry.git`], { cwd: reg.dir, env });
      expect(empty.stdout).toBe('');

      upstream = await startHub({ data: upData, listen: `127.0.0.1:${upPort}`, tokensFile: upTokens.file });
      await waitFor(() => m.status().lastSyncAt !== null && m.status().lastError === null, 'the mirror to catch up');
      const refs = await gitAsync(['ls-remote', `http://x:${local.secrets['north-1']}@${new URL(mirror.url).host}/registry.git`], { cwd: reg.dir, env });
      expect(refs.stdout).toContain(`${reg.head()}\trefs/heads/main`);

      const report = (site: string) => fetch(`${mirror.url}/api/v1/sites/${site}/status`, {
        method: 'POST', headers: { authorization: `Bearer ${local.secrets[site]}`, 'content-type': 'application/json' }, body: JSON.stringify({ health: 'Ready', stalenessSeconds: 1 }),
      });
      // south-9 is the mirror's site, but the mirror's upstream token may not report for it.
      expect((await report('south-9')).status).toBe(200);
      expect((await report('north-1')).status).toBe(200);
      await waitFor(() => m.status().reportsQueued === 0, 'the outbox to empty');
      await m.reportsIdle();
      const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
      expect(metrics).toMatch(/^modelsync_mirror_reports_total\{result="dropped"\} 1$/m);
      expect(metrics).toMatch(/^modelsync_mirror_reports_total\{result="forwarded"\} 1$/m);
      expect(log.lines().find((l) => l.site === 'south-9')?.msg).toMatch(/refused a forwarded status report; it is not sent again/);
      // The mirror's own fleet view keeps both.
      expect(mirror.sites.get('south-9')?.report.health).toBe('Ready');

      // A report queued while the upstream is down survives a restart of the mirror itself.
      await upstream.close();
      await report('north-1');
      await waitFor(() => m.status().reportsQueued === 1 && m.status().reportsError !== null, 'the report to queue');
      const owed = mirror.sites.get('north-1')!.receivedAt;
      await mirror.close();
      mirror = await startMirror();
      m = mirror.mirror!;
      expect(m.status().reportsQueued).toBe(1);
      upstream = await startHub({ data: upData, listen: `127.0.0.1:${upPort}`, tokensFile: upTokens.file });
      await waitFor(() => m.status().reportsQueued === 0, 'the owed report to go up after both restarts');
      const up = (await (await fetch(`${upstream.url}/api/v1/sites`, { headers: { authorization: `Bearer ${upTokens.secrets['mirror-north']}` } })).json()) as { sites: Array<{ site: string; via?: { receivedAt: string } }> };
      expect(up.sites.find((x) => x.site === 'north-1')?.via?.receivedAt).toBe(owed);
      expect(log.text()).not.toContain(upTokens.secrets['mirror-north']);
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });
});
