/**
 * The registry history the dashboard and notifications read from the hub's
 * bare repositories, with stock git pushing to a real hub: promotions,
 * rollbacks and reverts classified; rollouts in progress shown only when
 * registry/rollouts/*.yaml exists; a rollout file's arrival, change and
 * removal each notify.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readRepoHistory } from '../../src/hub/dashboard/history.ts';
import { gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

describe('registry history on the hub', () => {
  it('classifies deploys, shows rollouts only while a file exists, and notifies rollout steps', async () => {
    const got: Array<Record<string, unknown>> = [];
    const rx = createServer((req, res) => {
      let b = '';
      req.on('data', (d: Buffer) => (b += d.toString()));
      req.on('end', () => {
        got.push(JSON.parse(b) as Record<string, unknown>);
        res.end();
      });
    });
    servers.push(rx);
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', r));
    const notify = join(tempDir('n-'), 'notify.yaml');
    writeFileSync(notify, `webhooks:\n  - {url: "http://127.0.0.1:${(rx.address() as AddressInfo).port}/", events: [rollout]}\n`);
    const th = await startTestHub({ notify });
    const env = isolatedGitEnv();
    const work = join(tempDir('w-'), 'reg');
    const g = (args: string[]): Promise<unknown> => gitAsync(args, { cwd: work, env });
    await gitAsync(['init', '-q', '-b', 'main', work], { cwd: '/', env });
    mkdirSync(join(work, 'registry/rollouts'), { recursive: true });
    const reg = (v: string): void => writeFileSync(join(work, 'registry/model_registry.yaml'), `models:\n  face:\n    current_version: "${v}"\n`);
    reg('1');
    await g(['add', '-A']);
    await g(['commit', '-qm', 'Publish face 1']);
    await g(['remote', 'add', 'origin', th.repoUrl('registry')]);
    await g(['push', '-q', 'origin', 'main']);
    const gitDir = join(th.data, 'repos', 'registry.git');
    expect((await readRepoHistory('registry', gitDir)).rollouts).toEqual([]);

    writeFileSync(join(work, 'registry/rollouts/face.yaml'), 'model: face\nversion: "2"\nfrom: "1"\nwaves:\n  - {name: canary, sites: {labels: {wave: canary}}, soak: 30m}\n  - {name: all, sites: all}\nstate: {wave: canary, since: "2026-01-15T10:00:00Z", status: progressing}\n');
    await g(['add', '-A']);
    await g(['commit', '-qm', 'Start rollout of face 2']);
    await g(['push', '-q', 'origin', 'main']);
    const h1 = await readRepoHistory('registry', gitDir);
    expect(h1.rollouts).toEqual([{ repo: 'registry', file: 'registry/rollouts/face.yaml', model: 'face', version: '2', from: '1', waves: ['canary', 'all'], wave: 'canary', status: 'progressing', since: '2026-01-15T10:00:00Z' }]);

    const during = await (await fetch(`${th.url}/`)).text();
    expect(during).toMatch(/<section id="rollouts">[\s\S]*<b>canary<\/b> → all[\s\S]*progressing/);

    rmSync(join(work, 'registry/rollouts/face.yaml'));
    reg('2');
    await g(['add', '-A']);
    await g(['commit', '-qm', 'Promote face 2']);
    reg('1');
    await g(['commit', '-qam', 'Roll back face to 1']);
    await g(['revert', '--no-edit', 'HEAD']);
    await g(['commit', '-q', '--allow-empty', '-m', 'Unrelated']);
    await g(['push', '-q', 'origin', 'main']);
    const h2 = await readRepoHistory('registry', gitDir);
    expect(h2.rollouts).toEqual([]);
    expect(h2.deploys.map((d) => [d.kind, d.subject])).toEqual([
      ['revert', 'Revert "Roll back face to 1"'],
      ['rollback', 'Roll back face to 1'],
      ['promotion', 'Promote face 2'],
      ['change', 'Start rollout of face 2'],
      ['promotion', 'Publish face 1'],
    ]);

    // The dashboard shows the rollout section only while one is in progress: none now.
    const page = await (await fetch(`${th.url}/`)).text();
    expect(page).not.toContain('id="rollouts"');
    expect(page).toContain('Revert &#34;Roll back face to 1&#34;');

    const end = Date.now() + 5000;
    while (got.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(got.map((n) => (n.rollout as { change: string; file: string }).change)).toEqual(['started', 'finished']);
    expect(got[0]).toMatchObject({ event: 'rollout', rollout: { repo: 'registry', file: 'registry/rollouts/face.yaml' } });
  });
});
