/**
 * The hub driven by the stock `git` and `git lfs` clients, as an operator's
 * publisher and sites would use it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { ZERO_OID } from '../../src/hub/index.ts';
import { gitAsync, isolatedGitEnv, tempDir, writeTree, type RunResult } from '../helpers/env.ts';
import { openEventStream, startTestHub, type TestHub } from '../helpers/hub.ts';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const objectPath = (data: string, repo: string, oid: string): string => join(data, 'repos', `${repo}.git`, 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);

describe('stock git + git lfs against the hub', () => {
  let th: TestHub;
  let env: NodeJS.ProcessEnv;
  let work: string;
  const v1 = randomBytes(3 << 20);
  const v2 = randomBytes(1 << 20);
  const small = randomBytes(50_000);
  // Text, like the chunk index publish writes: the hub sends it gzip-compressed to clients that ask (Go's HTTP client does).
  const text = Buffer.from(JSON.stringify(Array.from({ length: 3000 }, (_, i) => createHash('sha256').update(String(i)).digest('hex'))));
  const g = (args: string[], cwd: string, allowFail = false): Promise<RunResult> => gitAsync(args, { cwd, env, allowFail });
  const lsRemote = async (): Promise<string> => (await g(['ls-remote', th.repoUrl('registry', th.secrets.admin)], work)).stdout;

  beforeAll(async () => {
    th = await startTestHub({ tokens: true, heartbeatMs: 200 });
    env = isolatedGitEnv();
    work = join(tempDir(), 'publisher');
    await g(['init', '-q', work], '/');
    await g(['lfs', 'track', 'registry/**/*.bin'], work);
    writeTree(work, { 'registry/face/2025-01-01/model.bin': v1, 'registry/face/2025-01-01/labels.bin': small, 'registry/face/2025-01-01/classes.bin': text, 'README.md': 'registry\n' });
    await g(['add', '.'], work);
    await g(['commit', '-qm', 'face 2025-01-01'], work);
    await g(['remote', 'add', 'origin', th.repoUrl('registry', th.secrets.publisher)], work);
  });

  test('a publisher push with LFS objects creates the missing repository and emits a ref event', async () => {
    expect(existsSync(join(th.data, 'repos', 'registry.git'))).toBe(false);
    const events = await openEventStream(`${th.url}/api/v1/events`, th.auth(th.secrets.site));
    try {
      expect(events.status).toBe(200);
      const r = await g(['push', 'origin', 'main'], work);
      expect(r.stderr).toContain('[new branch]');
      // Quiet push: no locking advice (which would echo the credentialed URL).
      expect(r.stdout + r.stderr).not.toContain('Locking support');

      const head = (await g(['rev-parse', 'HEAD'], work)).stdout.trim();
      const ev = await events.next((f) => f.event === 'ref');
      expect(JSON.parse(ev.data)).toMatchObject({ repo: 'registry', ref: 'refs/heads/main', before: ZERO_OID, after: head });
      expect(new Date(JSON.parse(ev.data).at).getTime()).toBeGreaterThan(Date.now() - 60_000);
      expect(ev.id).toBeTruthy();
    } finally {
      events.close();
    }

    // A bare repo in git-lfs's own layout, objects byte-identical.
    const gitDir = join(th.data, 'repos', 'registry.git');
    expect(statSync(join(gitDir, 'HEAD')).isFile()).toBe(true);
    expect((await g(['rev-parse', '--is-bare-repository'], gitDir)).stdout.trim()).toBe('true');
    for (const buf of [v1, small]) expect(sha(readFileSync(objectPath(th.data, 'registry', sha(buf))))).toBe(sha(buf));
    // Nothing left behind in tmp/.
    expect(readdirSync(join(th.data, 'tmp'))).toEqual([]);
    expect(await lsRemote()).toContain('refs/heads/main');
  });

  test('a site clones with its token and git lfs smudges the real files', async () => {
    const dir = join(tempDir(), 'site');
    await g(['clone', '-q', th.repoUrl('registry', th.secrets.site), dir], '/');
    expect(sha(readFileSync(join(dir, 'registry/face/2025-01-01/model.bin')))).toBe(sha(v1));
    expect(sha(readFileSync(join(dir, 'registry/face/2025-01-01/labels.bin')))).toBe(sha(small));
    expect(sha(readFileSync(join(dir, 'registry/face/2025-01-01/classes.bin')))).toBe(sha(text));
  });

  test('git lfs fetch --all brings objects of older commits, and git lfs fsck is clean', async () => {
    // A second version replaces model.bin, so v1 is only reachable from history.
    writeTree(work, { 'registry/face/2025-01-01/model.bin': v2 });
    await g(['commit', '-qam', 'face: new weights'], work);
    await g(['push', '-q', 'origin', 'main'], work);

    const dir = join(tempDir(), 'site-all');
    await g(['clone', '-q', th.repoUrl('registry', th.secrets.site), dir], '/');
    const localObj = (oid: string): string => join(dir, '.git', 'lfs', 'objects', oid.slice(0, 2), oid.slice(2, 4), oid);
    expect(existsSync(localObj(sha(v2)))).toBe(true);
    expect(existsSync(localObj(sha(v1)))).toBe(false);

    await g(['lfs', 'fetch', '--all'], dir);
    expect(sha(readFileSync(localObj(sha(v1))))).toBe(sha(v1));
    const fsck = await g(['lfs', 'fsck'], dir);
    expect(fsck.stdout).toContain('Git LFS fsck OK');
  });

  test('a second push of the same objects uploads nothing: the hub says it has them', async () => {
    const storedBefore = th.hub.metrics.value('modelsync_hub_lfs_objects_stored_total');
    const putsBefore = th.hub.metrics.value('modelsync_hub_http_requests_total', { route: 'lfs-upload', method: 'PUT', code: '200' });
    const batchesBefore = th.hub.metrics.value('modelsync_hub_http_requests_total', { route: 'lfs-batch', method: 'POST', code: '200' });
    expect(storedBefore).toBe(4); // v1, v2, labels, classes

    // A fresh clone has every object locally; pushing a new branch makes
    // git-lfs offer them all again.
    const dir = join(tempDir(), 'again');
    await g(['clone', '-q', th.repoUrl('registry', th.secrets.publisher), dir], '/');
    await g(['lfs', 'fetch', '--all'], dir);
    await g(['push', '-q', 'origin', 'main:refs/heads/copy'], dir);
    const r = await g(['lfs', 'push', '--all', 'origin'], dir);
    expect(r.status).toBe(0);

    // git-lfs did ask (a batch), and was told to upload nothing.
    expect(th.hub.metrics.value('modelsync_hub_http_requests_total', { route: 'lfs-batch', method: 'POST', code: '200' })).toBeGreaterThan(batchesBefore);
    expect(th.hub.metrics.value('modelsync_hub_lfs_objects_stored_total')).toBe(storedBefore);
    expect(th.hub.metrics.value('modelsync_hub_http_requests_total', { route: 'lfs-upload', method: 'PUT', code: '200' })).toBe(putsBefore);

    // And what git-lfs was told: no upload action for any of them.
    const res = await fetch(`${th.url}/registry.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { ...th.auth(th.secrets.publisher), 'Content-Type': 'application/vnd.git-lfs+json', Accept: 'application/vnd.git-lfs+json' },
      body: JSON.stringify({ operation: 'upload', transfers: ['basic'], objects: [v1, v2, small].map((b) => ({ oid: sha(b), size: b.length })) }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/vnd\.git-lfs\+json/);
    const body = (await res.json()) as { objects: Array<{ actions?: unknown; error?: unknown }> };
    expect(body.objects).toHaveLength(3);
    for (const o of body.objects) {
      expect(o.actions).toBeUndefined();
      expect(o.error).toBeUndefined();
    }
  });

  test('the bare repo on disk is complete: a local-path clone smudges from its lfs/objects', async () => {
    const dir = join(tempDir(), 'local');
    await g(['clone', '-q', join(th.data, 'repos', 'registry.git'), dir], '/');
    expect(sha(readFileSync(join(dir, 'registry/face/2025-01-01/model.bin')))).toBe(sha(v2));
    await g(['lfs', 'fetch', '--all'], dir);
    expect((await g(['lfs', 'fsck'], dir)).stdout).toContain('Git LFS fsck OK');
  });

  test('anonymous and wrong-token clones are refused', async () => {
    const base = tempDir();
    const anon = await g(['clone', '-q', th.repoUrl('registry'), join(base, 'anon')], '/', true);
    expect(anon.status).not.toBe(0);
    expect(anon.stderr).toMatch(/could not read Username|Authentication failed|401/);
    expect(existsSync(join(base, 'anon', 'README.md'))).toBe(false);

    const wrong = await g(['clone', '-q', th.repoUrl('registry', 'not-a-token'), join(base, 'wrong')], '/', true);
    expect(wrong.status).not.toBe(0);
    expect(wrong.stderr).toMatch(/Authentication failed|401/);
    expect(wrong.stderr).not.toContain('not-a-token');
    expect(existsSync(join(base, 'wrong', 'README.md'))).toBe(false);
  });

  test("a site token's push is refused and changes nothing", async () => {
    const before = await lsRemote();
    const dir = join(tempDir(), 'site-push');
    await g(['clone', '-q', th.repoUrl('registry', th.secrets.site), dir], '/');
    const rogue = randomBytes(100_000);
    writeTree(dir, { 'registry/face/2025-01-01/model.bin': rogue, 'README.md': 'changed by a site\n' });
    await g(['commit', '-qam', 'rogue'], dir);
    const r = await g(['push', 'origin', 'main'], dir, true);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/403|Forbidden|Authorization error/);
    expect(await lsRemote()).toBe(before);
    expect(existsSync(objectPath(th.data, 'registry', sha(rogue)))).toBe(false);
  });

  test('a pack larger than http.postBuffer (sent chunked) pushes and clones intact', async () => {
    const dir = join(tempDir(), 'bigpack');
    await g(['init', '-q', dir], '/');
    const blob = randomBytes(3 << 20); // not LFS-tracked: goes into the Git pack itself
    writeTree(dir, { 'plain.dat': blob });
    await g(['add', '.'], dir);
    await g(['commit', '-qm', 'big'], dir);
    await g(['push', '-q', th.repoUrl('bigpack', th.secrets.publisher), 'main'], dir);
    const clone = join(tempDir(), 'bigpack-clone');
    await g(['clone', '-q', th.repoUrl('bigpack', th.secrets.site), clone], '/');
    expect(sha(readFileSync(join(clone, 'plain.dat')))).toBe(sha(blob));
  });

  test('HEAD follows the pushed branch when a repo is created by a push of another name', async () => {
    const dir = join(tempDir(), 'other');
    await g(['init', '-q', '-b', 'release', dir], '/');
    writeTree(dir, { 'x.txt': 'x\n' });
    await g(['add', '.'], dir);
    await g(['commit', '-qm', 'x'], dir);
    await g(['push', '-q', th.repoUrl('models2', th.secrets.publisher), 'release'], dir);
    const clone = join(tempDir(), 'other-clone');
    const r = await g(['clone', th.repoUrl('models2', th.secrets.site), clone], '/');
    expect(r.stderr).not.toContain('remote HEAD refers to nonexistent ref');
    expect(readFileSync(join(clone, 'x.txt'), 'utf8')).toBe('x\n');
  });
});

describe('git request body limit', () => {
  test('a push whose pack exceeds the limit is refused and moves no ref', async () => {
    const th = await startTestHub({ tokens: true, limits: { gitBodyBytes: 1 << 20 } });
    const env = isolatedGitEnv();
    const dir = join(tempDir(), 'w');
    await gitAsync(['init', '-q', dir], { cwd: '/', env });
    writeTree(dir, { 'plain.dat': randomBytes(3 << 20) });
    await gitAsync(['add', '.'], { cwd: dir, env });
    await gitAsync(['commit', '-qm', 'big'], { cwd: dir, env });
    const r = await gitAsync(['push', th.repoUrl('reg', th.secrets.publisher), 'main'], { cwd: dir, env, allowFail: true });
    expect(r.status).not.toBe(0);
    // git's quarantine of the refused objects is gone, nothing was stored.
    const objects = join(th.data, 'repos', 'reg.git', 'objects');
    expect(readdirSync(objects).sort()).toEqual(['info', 'pack']);
    expect(readdirSync(join(objects, 'pack'))).toEqual([]);
    const refs = await gitAsync(['ls-remote', th.repoUrl('reg', th.secrets.admin)], { cwd: dir, env });
    expect(refs.stdout.trim()).toBe('');
    expect(th.hub.metrics.value('modelsync_hub_ref_events_total')).toBe(0);
  });
});
