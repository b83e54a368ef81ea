/**
 * Change events (SSE) after pushes, with heartbeats and Last-Event-ID
 * resume, and the fleet status store.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { ZERO_OID, type RefEvent } from '../../src/hub/index.ts';
import { gitAsync, isolatedGitEnv, tempDir, writeTree } from '../helpers/env.ts';
import { openEventStream, startTestHub, type TestHub } from '../helpers/hub.ts';

describe('change events', () => {
  let th: TestHub;
  let env: NodeJS.ProcessEnv;
  let work: string;
  let n = 0;
  const commitAndPush = async (refspec = 'main', repo = 'registry'): Promise<string> => {
    writeTree(work, { 'counter.txt': `${++n}\n` });
    await gitAsync(['commit', '-qam', `change ${n}`], { cwd: work, env });
    await gitAsync(['push', '-q', th.repoUrl(repo, th.secrets.publisher), refspec], { cwd: work, env });
    return (await gitAsync(['rev-parse', 'HEAD'], { cwd: work, env })).stdout.trim();
  };

  beforeAll(async () => {
    th = await startTestHub({ tokens: true, heartbeatMs: 100 });
    env = isolatedGitEnv();
    work = join(tempDir(), 'w');
    await gitAsync(['init', '-q', work], { cwd: '/', env });
    writeTree(work, { 'counter.txt': '0\n' });
    await gitAsync(['add', '.'], { cwd: work, env });
    await gitAsync(['commit', '-qm', 'init'], { cwd: work, env });
    await gitAsync(['push', '-q', th.repoUrl('registry', th.secrets.publisher), 'main'], { cwd: work, env });
  });

  test('one ref event per changed ref, with before and after, also on the in-process emitter', async () => {
    const seen: RefEvent[] = [];
    th.hub.events.on('ref', (e) => seen.push(e));
    const s = await openEventStream(`${th.url}/api/v1/events`, th.auth(th.secrets.site));
    try {
      expect(s.headers['content-type']).toMatch(/^text\/event-stream/);
      const before = (await gitAsync(['rev-parse', 'HEAD'], { cwd: work, env })).stdout.trim();
      const after = await commitAndPush('main:main');
      await gitAsync(['push', '-q', th.repoUrl('registry', th.secrets.publisher), 'main:refs/heads/copy', 'main:refs/tags/v1'], { cwd: work, env });
      await gitAsync(['push', '-q', th.repoUrl('registry', th.secrets.publisher), ':refs/heads/copy'], { cwd: work, env });
      await s.next((f) => f.event === 'ref' && JSON.parse(f.data).after === ZERO_OID);
      const events = s.frames.filter((f) => f.event === 'ref').map((f) => JSON.parse(f.data) as RefEvent);
      expect(events.map(({ ref, before: b, after: a }) => ({ ref, before: b, after: a }))).toEqual([
        { ref: 'refs/heads/main', before, after },
        { ref: 'refs/heads/copy', before: ZERO_OID, after },
        { ref: 'refs/tags/v1', before: ZERO_OID, after },
        { ref: 'refs/heads/copy', before: after, after: ZERO_OID },
      ]);
      expect(events.every((e) => e.repo === 'registry')).toBe(true);
      expect(seen.map((e) => e.ref)).toEqual(events.map((e) => e.ref));
    } finally {
      s.close();
    }
  });

  test('heartbeat comments keep the stream alive', async () => {
    const s = await openEventStream(`${th.url}/api/v1/events`, th.auth(th.secrets.site));
    try {
      for (let i = 0; i < 50 && !s.comments.includes('heartbeat'); i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.comments).toContain('heartbeat');
    } finally {
      s.close();
    }
  });

  test('a client reconnecting with Last-Event-ID gets what it missed, in order', async () => {
    const s = await openEventStream(`${th.url}/api/v1/events`, th.auth(th.secrets.site));
    const c1 = await commitAndPush();
    const first = await s.next((f) => f.event === 'ref' && JSON.parse(f.data).after === c1);
    s.close();
    // While disconnected:
    const c2 = await commitAndPush();
    const c3 = await commitAndPush();
    const again = await openEventStream(`${th.url}/api/v1/events`, { ...th.auth(th.secrets.site), 'Last-Event-ID': first.id! });
    try {
      await again.next((f) => f.event === 'ref' && JSON.parse(f.data).after === c3);
      expect(again.frames.map((f) => JSON.parse(f.data).after)).toEqual([c2, c3]);
    } finally {
      again.close();
    }
  });

  test('a repo filter only delivers that repo; an unknown Last-Event-ID gets a resync event', async () => {
    const s = await openEventStream(`${th.url}/api/v1/events?repo=other`, { ...th.auth(th.secrets.site), 'Last-Event-ID': 'zzzz-5' });
    try {
      const resync = await s.next((f) => f.event === 'resync');
      expect(JSON.parse(resync.data).reason).toContain('restarted');
      await commitAndPush('main', 'registry');
      const c = await commitAndPush('main', 'other');
      const ev = await s.next((f) => f.event === 'ref');
      expect(JSON.parse(ev.data)).toMatchObject({ repo: 'other', after: c });
      expect(s.frames.filter((f) => f.event === 'ref')).toHaveLength(1);
    } finally {
      s.close();
    }
  });

  test('events need a token; closing the hub ends open streams', async () => {
    const anon = await fetch(`${th.url}/api/v1/events`);
    expect(anon.status).toBe(401);
    await anon.arrayBuffer();

    const other = await startTestHub({ tokens: true });
    const s = await openEventStream(`${other.url}/api/v1/events`, other.auth(other.secrets.site));
    const ended = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        // The helper exposes no end event; a closed stream stops growing and the hub's gauge drops.
        if (other.hub.metrics.value('modelsync_hub_event_subscribers') === 0) {
          clearInterval(poll);
          resolve();
        }
      }, 10);
    });
    expect(other.hub.metrics.value('modelsync_hub_event_subscribers')).toBe(1);
    await other.close();
    await ended;
    s.close();
  });
});

describe('fleet status', () => {
  let th: TestHub;
  const post = (site: string, secret: string, body: unknown): Promise<Response> =>
    fetch(`${th.url}/api/v1/sites/${site}/status`, { method: 'POST', headers: { ...th.auth(secret), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const list = async (secret: string): Promise<Array<Record<string, unknown>>> => {
    const res = await fetch(`${th.url}/api/v1/sites`, { headers: th.auth(secret) });
    expect(res.status).toBe(200);
    return ((await res.json()) as { sites: Array<Record<string, unknown>> }).sites;
  };

  beforeAll(async () => {
    th = await startTestHub({ tokens: true, sites: ['beta', 'gamma'] });
  });

  test('a site reports for itself; the fleet view shows the last report with receivedAt', async () => {
    const r1 = await post('beta', th.secrets.bySite.beta!, { state: 'InSync', models: [{ model: 'face', active: '2025-01-01' }] });
    expect(r1.status).toBe(200);
    await r1.arrayBuffer();
    const r2 = await post('beta', th.secrets.bySite.beta!, { state: 'Degraded', models: [{ model: 'face', active: '2025-01-02' }], site: 'spoofed', receivedAt: 'never' });
    expect(r2.status).toBe(200);
    await r2.arrayBuffer();
    const sites = await list(th.secrets.publisher);
    expect(sites).toHaveLength(1);
    // models is a list of {model, ...} (the hub refuses other shapes: status --hub reads it).
    expect(sites[0]).toMatchObject({ site: 'beta', state: 'Degraded', models: [{ model: 'face', active: '2025-01-02' }] });
    expect(Date.parse(sites[0]!.receivedAt as string)).toBeGreaterThan(Date.now() - 60_000);
  });

  test('a site token may not report for another site, and sees only its own sites', async () => {
    const r = await post('gamma', th.secrets.bySite.beta!, { state: 'InSync' });
    expect(r.status).toBe(403);
    await r.arrayBuffer();
    const ok = await post('gamma', th.secrets.publisher, { state: 'InSync', via: 'publisher' });
    expect(ok.status).toBe(200);
    await ok.arrayBuffer();
    expect((await list(th.secrets.admin)).map((s) => s.site)).toEqual(['beta', 'gamma']);
    expect((await list(th.secrets.bySite.beta!)).map((s) => s.site)).toEqual(['beta']);
  });

  test('reports survive a restart of the hub', async () => {
    expect(existsSync(join(th.data, 'sites', 'beta.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(th.data, 'sites', 'beta.json'), 'utf8'))).toMatchObject({ site: 'beta', report: { state: 'Degraded' } });
    const before = await list(th.secrets.admin);
    await th.close();
    const again = await startTestHub({ data: th.data, tokensFile: th.tokensFile });
    const res = await fetch(`${again.url}/api/v1/sites`, { headers: again.auth(th.secrets.admin) });
    expect(((await res.json()) as { sites: unknown[] }).sites).toEqual(before);
  });
});
