/**
 * The registry's hooks under the stock git client: a broken commit is
 * refused, a push validates and uploads LFS objects through git-lfs (which
 * core.hooksPath would otherwise bypass), and a commit on the default branch
 * is pushed at once.
 */
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, git, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

let env: NodeJS.ProcessEnv;
beforeAll(() => {
  env = isolatedGitEnv();
});

function setup(): { repo: string; bare: string } {
  const root = tempDir();
  const repo = join(root, 'registry');
  const r = cli(['init', repo], { cwd: root, env });
  if (r.status !== 0) throw new Error(r.stderr);
  const bare = join(root, 'hub.git');
  git(['init', '-q', '--bare', '-b', 'main', bare], { cwd: root, env });
  git(['remote', 'add', 'origin', bare], { cwd: repo, env });
  return { repo, bare };
}

const lfsObject = (gitdir: string, oid: string): string => join(gitdir, 'lfs/objects', oid.slice(0, 2), oid.slice(2, 4), oid);

describe('hooks with stock git', () => {
  it('pre-commit refuses a commit that breaks a manifest, positioned; a good commit passes', () => {
    const { repo } = setup();
    const before = git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout;
    const m = join(repo, 'registry/face_recognition/2025-12-08/manifest.yaml');
    writeFileSync(m, readFileSync(m, 'utf8').replace('size: 4480', 'size: 4481'));
    // -a makes git hand the hook a temporary index (GIT_INDEX_FILE); the hook must validate that one.
    const r = git(['commit', '-qam', 'break it'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' }, allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr + r.stdout).toContain('registry/face_recognition/2025-12-08/manifest.yaml:21:11: files[3].size: is 4481 but the LFS pointer');
    expect(r.stderr).toContain('commit refused');
    expect(git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout).toBe(before);
    git(['checkout', '--', 'registry'], { cwd: repo, env });
    const s = join(repo, 'sites/gamma.yaml');
    writeFileSync(s, readFileSync(s, 'utf8').replace('region: east', 'region: west'));
    git(['commit', '-qam', 'gamma moves west'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('gamma moves west');
  });

  it('pre-push validates, then git lfs pre-push uploads the objects; post-commit pushes at once', () => {
    const { repo, bare } = setup();
    const p = git(['push', '-u', 'origin', 'main'], { cwd: repo, env });
    expect(p.stdout + p.stderr).toContain('ok: commit');
    const oid = readFileSync(join(repo, 'registry/face_recognition/2025-12-08/facemodel.pickle'), 'utf8').match(/sha256:([0-9a-f]{64})/)![1]!;
    expect(existsSync(lfsObject(bare, oid))).toBe(true);
    expect(git(['lfs', 'ls-files'], { cwd: repo, env }).stdout).toContain('facemodel.pickle');

    // A commit on main that changes sites/ reaches the remote without an explicit push.
    const s = join(repo, 'sites/beta.yaml');
    writeFileSync(s, readFileSync(s, 'utf8').replace('region: south', 'region: west'));
    git(['commit', '-qam', 'beta moves west'], { cwd: repo, env });
    expect(git(['rev-parse', 'main'], { cwd: bare, env }).stdout).toBe(git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout);

    // A new model version published with modelsync is pushed by stock git, objects included.
    const f = join(tempDir(), 'ssd.bin');
    writeFileSync(f, 'new ssd weights');
    const pub = cli(['publish', 'mobilenet_ssd', '2025-12-01', f], { cwd: repo, env });
    expect(pub.status).toBe(0);
    git(['push'], { cwd: repo, env });
    const newOid = readFileSync(join(repo, 'registry/mobilenet_ssd/2025-12-01/ssd.bin'), 'utf8').match(/sha256:([0-9a-f]{64})/)![1]!;
    expect(readFileSync(lfsObject(bare, newOid), 'utf8')).toBe('new ssd weights');
  });

  it('pre-push refuses an invalid commit even when it was committed with --no-verify', () => {
    const { repo, bare } = setup();
    git(['push', '-q', '-u', 'origin', 'main'], { cwd: repo, env });
    const s = join(repo, 'sites/alpha.yaml');
    writeFileSync(s, readFileSync(s, 'utf8').replace('schedule: "*/15 * * * *"', 'schedule: "whenever"'));
    git(['commit', '-q', '--no-verify', '-am', 'bad cron'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    const r = git(['push'], { cwd: repo, env, allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('sites/alpha.yaml:5:11: schedule: "whenever" is not a valid cron expression');
    expect(r.stderr).toContain('push refused');
    expect(git(['rev-parse', 'main'], { cwd: bare, env }).stdout).not.toBe(git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout);
    // The automatic push after such a commit says the pre-push hook refused it, not that the network failed.
    writeFileSync(s, `${readFileSync(s, 'utf8')}# still bad\n`);
    const auto = git(['commit', '-q', '--no-verify', '-am', 'still bad'], { cwd: repo, env });
    expect(auto.stderr).toContain('modelsync: push to origin was refused by the pre-push hook (see above); the commit is kept');
  });

  it('post-commit keeps the commit when the remote is unreachable', () => {
    const { repo } = setup();
    git(['remote', 'set-url', 'origin', join(tempDir(), 'gone.git')], { cwd: repo, env });
    const s = join(repo, 'sites/beta.yaml');
    writeFileSync(s, readFileSync(s, 'utf8').replace('region: south', 'region: west'));
    const r = git(['commit', '-qam', 'offline edit'], { cwd: repo, env });
    expect(r.stderr).toContain('modelsync: push to origin failed: could not reach it (offline, or a wrong URL?); the commit is kept; push it later with: git push origin main');
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('offline edit');
  });

  it('post-commit says credentials, not "offline", when the hub refuses them; the commit is kept', async () => {
    const hub = await startTestHub({ tokens: true });
    const { repo } = setup();
    const s = join(repo, 'sites/beta.yaml');
    const cases: Array<[string, string]> = [
      ['no token', hub.repoUrl('models')],
      ['a wrong token', hub.repoUrl('models', 'not-a-token')],
      ['a token without the publisher role (403)', hub.repoUrl('models', hub.secrets.site)],
    ];
    for (const [what, url] of cases) {
      git(['remote', 'set-url', 'origin', url], { cwd: repo, env });
      writeFileSync(s, `${readFileSync(s, 'utf8')}# ${what}\n`);
      // Async: the hub answers from this process while git runs.
      const r = await gitAsync(['commit', '-qam', `edit with ${what}`], { cwd: repo, env });
      expect(r.status, what).toBe(0);
      expect(r.stderr, what).toContain('modelsync: push to origin was refused: the credentials were missing or rejected');
      expect(r.stderr, what).toContain('the commit is kept; push it later with: git push origin main');
      expect(r.stderr, what).not.toContain('could not reach');
      expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe(`edit with ${what}`);
    }
    // With the right token the same hook pushes, and the hub has the commit.
    git(['remote', 'set-url', 'origin', hub.repoUrl('models', hub.secrets.publisher)], { cwd: repo, env });
    writeFileSync(s, `${readFileSync(s, 'utf8')}# good\n`);
    const ok = await gitAsync(['commit', '-qam', 'edit with the publisher token'], { cwd: repo, env });
    expect(ok.stderr).not.toContain('modelsync: push to origin');
    const remote = await gitAsync(['ls-remote', 'origin', 'refs/heads/main'], { cwd: repo, env });
    expect(remote.stdout.split('\t')[0]).toBe(git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout.trim());
  });

  it('post-commit says when the remote moved on (a rejected push), not "offline"', () => {
    const { repo, bare } = setup();
    git(['push', '-q', '-u', 'origin', 'main'], { cwd: repo, env });
    const other = join(tempDir(), 'other');
    git(['clone', '-q', bare, other], { cwd: repo, env });
    git(['commit', '-q', '--allow-empty', '-m', 'someone else'], { cwd: other, env });
    git(['push', '-q', 'origin', 'main'], { cwd: other, env });
    const s = join(repo, 'sites/beta.yaml');
    writeFileSync(s, readFileSync(s, 'utf8').replace('region: south', 'region: west'));
    const r = git(['commit', '-qam', 'behind'], { cwd: repo, env });
    expect(r.stderr).toContain('modelsync: push to origin was rejected: origin has commits this branch does not (git pull --rebase first); the commit is kept');
  });

  it('post-commit says the server refused the push (a protected branch), not "offline"', () => {
    const { repo, bare } = setup();
    writeFileSync(join(bare, 'hooks/pre-receive'), '#!/bin/sh\necho "protected branch: main needs a review" >&2\nexit 1\n', { mode: 0o755 });
    const s = join(repo, 'sites/beta.yaml');
    writeFileSync(s, readFileSync(s, 'utf8').replace('region: south', 'region: west'));
    const r = git(['commit', '-qam', 'protected'], { cwd: repo, env });
    expect(r.stderr).toContain('modelsync: push to origin was refused by the server (a protected branch or a server-side hook; see git\'s output above); the commit is kept');
    expect(r.stderr).not.toContain('could not reach');
  });

  it('on a machine without modelsync (no node_modules, no node) the commit is refused with what was tried and how to fix it', () => {
    const { repo } = setup();
    // A PATH with what the hooks and git need, and no node, npx or modelsync.
    const bin = tempDir();
    for (const tool of ['git', 'git-lfs', 'sh', 'dirname', 'sed', 'head', 'cat', 'timeout']) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
    const bare: NodeJS.ProcessEnv = { ...env, PATH: bin, MODELSYNC_NO_AUTOPUSH: '1' };
    delete bare.MODELSYNC_BIN;
    const s = join(repo, 'sites/beta.yaml');
    const edit = (region: string): void => writeFileSync(s, readFileSync(s, 'utf8').replace(/region: \w+/, `region: ${region}`));
    const before = git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout;

    // init recorded its own bin/modelsync.js, but node is not there to run it.
    const bin1 = git(['config', 'modelsync.bin'], { cwd: repo, env }).stdout.trim();
    edit('west');
    let r = git(['commit', '-qam', 'west'], { cwd: repo, env: bare, allowFail: true });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`modelsync: cannot find the modelsync command; tried MODELSYNC_BIN (unset), git config modelsync.bin (${bin1}, but node is not on PATH), modelsync on PATH (not found), npx --no-install modelsync (not installed here).`);
    expect(r.stderr).toContain('set MODELSYNC_BIN (e.g. MODELSYNC_BIN="node /opt/modelsync/bin/modelsync.js")');
    expect(r.stderr).toContain('modelsync: commit refused: modelsync could not be run to validate the registry (see above).');
    expect(r.stderr).not.toContain('registry is invalid');

    // A recorded path that no longer exists (the checkout moved) says so.
    git(['config', 'modelsync.bin', '/gone/bin/modelsync.js'], { cwd: repo, env });
    r = git(['commit', '-qam', 'west'], { cwd: repo, env: bare, allowFail: true });
    expect(r.stderr).toContain('git config modelsync.bin (/gone/bin/modelsync.js does not exist)');
    expect(git(['rev-parse', 'HEAD'], { cwd: repo, env }).stdout).toBe(before);

    // MODELSYNC_BIN is the way out: the commit validates and goes through.
    r = git(['commit', '-qam', 'west'], { cwd: repo, env: { ...bare, MODELSYNC_BIN: `${process.execPath} ${CLI}` } });
    expect(r.stdout + r.stderr).toContain('ok: index');
    expect(git(['log', '-1', '--format=%s'], { cwd: repo, env }).stdout.trim()).toBe('west');
  });
});
