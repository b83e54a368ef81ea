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
    // Like git push -u: git status now compares with the hub's branch.
    expect((await gitAsync(['status', '-sb'], { cwd: repo, env })).stdout).toMatch(/^## main\.\.\.origin\/main\n/);

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

describe('--push credentials', () => {
  it('--token-file works for publish, promote and rollback; refusals name where the token came from; no token says how to give one', async () => {
    const hub = await startTestHub({ tokens: true });
    const root = tempDir();
    const repo = join(root, 'registry');
    expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
    await gitAsync(['remote', 'add', 'origin', hub.repoUrl('models')], { cwd: repo, env });
    const files = [1, 2, 3].map((i) => {
      const f = join(root, `part${i}.bin`);
      writeFileSync(f, `part ${i}`);
      return f;
    });
    const head = async (): Promise<string> => (await gitAsync(['rev-parse', 'HEAD'], { cwd: repo, env })).stdout.trim();
    const noToken = { ...env };
    delete noToken.MODELSYNC_TOKEN;
    delete noToken.MODELSYNC_TOKEN_FILE;

    // No token at all: one auth error (not "3 of 3 uploads failed") that says both ways to give one.
    const none = await cliAsync(['publish', 'det', '1', ...files, '--push'], { cwd: repo, env: noToken });
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/published det 1 in commit [0-9a-f]{12}, but the push failed: LFS batch upload refused/);
    expect(none.stderr).toContain('no token given: pass --token-file <file> or set MODELSYNC_TOKEN, or put credentials in the remote URL');
    expect(none.stderr).not.toMatch(/of 3|no token configured/);
    expect(none.stderr).toContain('[AuthError]');

    // A token file that does not exist: refused before anything is committed, naming the file.
    const before = await head();
    const missing = await cliAsync(['promote', 'det', '1', '--push', '--token-file', 'nope/token'], { cwd: repo, env: noToken });
    // A path the command line names that is not there is a usage error, as for --store and --repo.
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('cannot read token file nope/token: ENOENT');
    expect(missing.stderr).toContain('--token-file nope/token does not exist');
    expect(await head()).toBe(before);

    // A wrong token in a file: the refusal says which token was refused, and never shows it.
    const wrongFile = join(root, 'wrong-token');
    writeFileSync(wrongFile, 'not-the-token-123\n');
    const wrong = await cliAsync(['publish', 'det', '2', files[0]!, '--push', '--token-file', wrongFile], { cwd: repo, env: noToken });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain(`(the token from --token-file ${wrongFile} was refused)`);
    expect(wrong.stderr).not.toContain('not-the-token-123');

    // The right token, with the trailing newline an editor leaves: pushes everything not yet on the hub.
    const tokenFile = join(root, 'token');
    writeFileSync(tokenFile, `  ${hub.secrets.publisher}\n\n`);
    const ok = await cliAsync(['promote', 'det', '1', '--push', '--token-file', tokenFile, '--json'], { cwd: repo, env: noToken });
    expect(ok.status, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { pushed: { uploaded: number } }).pushed.uploaded).toBe(3);

    // Nothing left to upload: the refusal comes from the Git push itself and reads the same way.
    const gitRefused = await cliAsync(['rollback', 'det', '--push', '--token-file', wrongFile], { cwd: repo, env: noToken });
    expect(gitRefused.status).toBe(1);
    expect(gitRefused.stderr).toMatch(/rolled back det to 2 in commit [0-9a-f]{12}, but the push failed: push to .* was refused: .*\(the token from --token-file .*wrong-token was refused\)/);
    const rb = await cliAsync(['rollback', 'det', '--to', '1', '--push', '--token-file', tokenFile], { cwd: repo, env: noToken });
    expect(rb.status, rb.stderr).toBe(0);
    expect(rb.stdout).toContain('Pushed main to origin');

    // A site token is a valid token with the wrong role: the message says so, not "refused".
    const siteFile = join(root, 'site-token');
    writeFileSync(siteFile, hub.secrets.site);
    const forbidden = await cliAsync(['promote', 'det', '2', '--push', '--token-file', siteFile], { cwd: repo, env: noToken });
    expect(forbidden.status).toBe(1);
    expect(forbidden.stderr).toContain(`(the token from --token-file ${siteFile} is valid but its role may not push: a publisher or admin token is needed)`);
    expect(forbidden.stderr).not.toContain(hub.secrets.site);

    // --token-file without --push would silently do nothing: a usage error instead.
    const usage = await cliAsync(['promote', 'det', '1', '--token-file', tokenFile], { cwd: repo, env: noToken });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('--token-file is only used with --push');
  });
});

describe('--push without a remote', () => {
  it('is refused before anything is committed, for publish, promote and rollback', async () => {
    const root = tempDir();
    const repo = join(root, 'registry');
    expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
    const f = join(root, 'w.bin');
    writeFileSync(f, 'weights');
    expect((await cliAsync(['publish', 'det', '1', f], { cwd: repo, env })).status).toBe(0);
    expect((await cliAsync(['publish', 'det', '2', f, '--no-promote'], { cwd: repo, env })).status).toBe(0);
    const head = async (): Promise<string> => (await gitAsync(['rev-parse', 'HEAD'], { cwd: repo, env })).stdout.trim();
    const before = await head();
    for (const args of [['publish', 'det', '3', f, '--push'], ['promote', 'det', '2', '--push'], ['rollback', 'det', '--push', '--remote', 'hub']]) {
      const r = await cliAsync(args, { cwd: repo, env });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/no remote named "(origin|hub)" to push to \(add one with: git remote add (origin|hub) <url>\)/);
    }
    expect(await head()).toBe(before);
    expect((await gitAsync(['status', '--porcelain'], { cwd: repo, env })).stdout).toBe('');
  });
});
