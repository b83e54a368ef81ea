/**
 * publish --push against a real hub: LFS objects through our uploader, the
 * branch through isomorphic-git, checked by cloning with stock git + git-lfs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

let env: NodeJS.ProcessEnv;
beforeAll(() => {
  env = isolatedGitEnv();
});

describe('publish --push', () => {
  it('uploads the LFS objects and pushes the branch; a stock clone gets the files', async () => {
    const hub = await startTestHub({ tokens: true });
    const root = tempDir();
    const repo = join(root, 'registry');
    expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
    await gitAsync(['remote', 'add', 'origin', hub.repoUrl('models')], { cwd: repo, env });
    const f = join(root, 'w.bin');
    writeFileSync(f, Buffer.alloc(300_000, 3));

    const denied = await cliAsync(['publish', 'det', '1', f, '--push'], { cwd: repo, env: { ...env, MODELSYNC_TOKEN: 'wrong' } });
    expect(denied.status).toBe(1);
    expect(denied.stderr).not.toContain('wrong');

    // The commit exists locally now (publish succeeded, the push did not): push it with the next publish.
    const f2 = join(root, 'w2.bin');
    writeFileSync(f2, 'second');
    const r = await cliAsync(['publish', 'det', '2', f2, '--push', '--json'], { cwd: repo, env: { ...env, MODELSYNC_TOKEN: hub.secrets.publisher } });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { pushed: { uploaded: number; branch: string; url: string } };
    // Both versions' objects were missing on the hub: the earlier, unpushed publish is included.
    expect(doc.pushed.uploaded).toBe(2);
    expect(doc.pushed.url).not.toContain(hub.secrets.publisher);

    const clone = join(root, 'clone');
    await gitAsync(['clone', '-q', hub.repoUrl('models', hub.secrets.publisher), clone], { cwd: root, env });
    expect(readFileSync(join(clone, 'registry/det/1/w.bin')).equals(Buffer.alloc(300_000, 3))).toBe(true);
    expect(readFileSync(join(clone, 'registry/det/2/w2.bin'), 'utf8')).toBe('second');
    expect((await cliAsync(['validate'], { cwd: clone, env })).stdout).toContain('ok: working tree');

    // Nothing new to upload: a promote --push only moves the branch.
    const p = await cliAsync(['promote', 'det', '1', '--push', '--json'], { cwd: repo, env: { ...env, MODELSYNC_TOKEN: hub.secrets.publisher } });
    expect(p.status, p.stderr).toBe(0);
    expect((JSON.parse(p.stdout) as { pushed: { uploaded: number } }).pushed.uploaded).toBe(0);
  });
});
