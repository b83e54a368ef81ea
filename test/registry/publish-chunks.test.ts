/**
 * publish gives each large file a chunk index (the LFS object a site's chunk
 * delta starts from), committed as a pointer under the version's reserved
 * `.chunks/` folder; validate holds the manifest and those pointers to each
 * other. Checked with the stock git and git-lfs clients.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { chunkFile, parseChunkIndex, serializeChunkIndex } from '../../src/lfs/cdc.ts';
import { formatPointer } from '../../src/registry/lfs-pointer.ts';
import { cli, git, isolatedGitEnv, tempDir } from '../helpers/env.ts';

const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex');

let env: NodeJS.ProcessEnv;
beforeAll(() => {
  env = isolatedGitEnv();
});

function ok(args: string[], cwd: string): string {
  const r = cli(args, { cwd, env });
  if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function newRegistry(): { repo: string; root: string } {
  const root = tempDir();
  const repo = join(root, 'reg');
  ok(['init', repo, '--bare-example'], root);
  return { repo, root };
}

/** The `chunks: {oid: …, size: …}` lines of a manifest. */
function chunksOf(manifest: string): Array<{ oid: string; size: number }> {
  return [...manifest.matchAll(/chunks: \{oid: ([0-9a-f]{64}), size: (\d+)\}/g)].map((m) => ({ oid: m[1]!, size: Number(m[2]) }));
}

describe('publish with chunk indexes', () => {
  it('gives a file of 4 MiB or more a chunk index that stock git-lfs and validate accept; a small file gets none', async () => {
    const { repo, root } = newRegistry();
    const bigPath = join(root, 'w.bin');
    const big = randomBytes((6 << 20) + 12_345);
    writeFileSync(bigPath, big);
    writeFileSync(join(root, 'labels.bin'), randomBytes(100_000));
    ok(['publish', 'det', '1', bigPath, join(root, 'labels.bin')], repo);

    const manifest = readFileSync(join(repo, 'registry/det/1/manifest.yaml'), 'utf8');
    const chunks = chunksOf(manifest);
    expect(chunks).toHaveLength(1);
    // Under w.bin's entry (the one before labels.bin's).
    expect(manifest.indexOf('chunks:')).toBeGreaterThan(manifest.indexOf('name: w.bin'));
    expect(manifest.indexOf('chunks:')).toBeLessThan(manifest.indexOf('name: labels.bin'));
    const ref = chunks[0]!;

    // The commit carries a canonical pointer to the index, and the object is in git-lfs's cache.
    expect(git(['show', 'HEAD:registry/det/1/.chunks/w.bin.cdc'], { cwd: repo, env }).stdout).toBe(formatPointer(ref));
    const bytes = readFileSync(join(repo, '.git/lfs/objects', ref.oid.slice(0, 2), ref.oid.slice(2, 4), ref.oid));
    expect(sha(bytes)).toBe(ref.oid);
    expect(bytes.length).toBe(ref.size);
    // It is the index a site can use for w.bin: the chunks of the whole file, as the batch chunker cuts them.
    const expected = await chunkFile(bigPath);
    expect(parseChunkIndex(bytes, { oid: sha(big), size: big.length })).toEqual(expected);
    expect(bytes.equals(serializeChunkIndex(expected))).toBe(true);

    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
    const lfsFiles = git(['lfs', 'ls-files', '--name-only'], { cwd: repo, env }).stdout.trim().split('\n');
    expect(lfsFiles).toEqual(expect.arrayContaining(['registry/det/1/.chunks/w.bin.cdc', 'registry/det/1/w.bin', 'registry/det/1/labels.bin']));
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(ok(['validate'], repo)).toContain('ok: working tree');
    expect(ok(['validate', '--rev', 'HEAD'], repo)).toContain('ok: commit');
    // Smudged by stock git-lfs, the index is there as itself, and still validates.
    git(['lfs', 'checkout'], { cwd: repo, env });
    expect(readFileSync(join(repo, 'registry/det/1/.chunks/w.bin.cdc')).equals(bytes)).toBe(true);
    expect(ok(['validate'], repo)).toContain('ok: working tree');
  });

  it('validate catches a tampered chunks oid, a missing or stray index, and a manifest file inside .chunks/', () => {
    const { repo, root } = newRegistry();
    const bigPath = join(root, 'w.bin');
    writeFileSync(bigPath, randomBytes(5 << 20));
    ok(['publish', 'det', '1', bigPath], repo);
    const manifestFile = join(repo, 'registry/det/1/manifest.yaml');
    const manifest = readFileSync(manifestFile, 'utf8');
    const ref = chunksOf(manifest)[0]!;
    const line = manifest.split('\n').findIndex((l) => l.includes('chunks:')) + 1;
    const validate = (...args: string[]) => cli(['validate', ...args], { cwd: repo, env });

    // A tampered oid, committed with stock git past the hook, is caught at that commit, positioned.
    writeFileSync(manifestFile, manifest.replace(ref.oid, 'ab'.repeat(32)));
    git(['commit', '-q', '--no-verify', '-am', 'tamper'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    let r = validate('--rev', 'HEAD');
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).toMatch(new RegExp(`registry/det/1/manifest\\.yaml:${line}:\\d+: files\\[0\\]\\.chunks\\.oid: does not match the LFS pointer in registry/det/1/\\.chunks/w\\.bin\\.cdc \\(oid sha256:${ref.oid}\\)`));
    git(['reset', '-q', '--hard', 'HEAD^'], { cwd: repo, env });
    expect(validate().status).toBe(0);

    // The index named by chunks is gone.
    rmSync(join(repo, 'registry/det/1/.chunks/w.bin.cdc'));
    r = validate();
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`manifest\\.yaml:${line}:\\d+: files\\[0\\]\\.chunks: names a chunk index, but registry/det/1/\\.chunks/w\\.bin\\.cdc is missing`));
    git(['checkout', '--', 'registry/det/1/.chunks/w.bin.cdc'], { cwd: repo, env });

    // An index nobody names.
    copyFileSync(join(repo, 'registry/det/1/.chunks/w.bin.cdc'), join(repo, 'registry/det/1/.chunks/old.bin.cdc'));
    r = validate();
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/manifest\.yaml:\d+:\d+: files: registry\/det\/1\/\.chunks\/old\.bin\.cdc is not the chunk index of any file in the manifest/);
    rmSync(join(repo, 'registry/det/1/.chunks/old.bin.cdc'));

    // A manifest may not list a file of its own inside the reserved folder.
    const v2 = join(repo, 'registry/det/2');
    mkdirSync(join(v2, '.chunks'), { recursive: true });
    writeFileSync(join(v2, '.chunks/x.bin'), 'x');
    writeFileSync(join(v2, 'manifest.yaml'), `name: det\nversion: "2"\nfiles:\n  - name: .chunks/x.bin\n    sha256: ${sha('x')}\n    size: 1\n`);
    r = validate();
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/registry\/det\/2\/manifest\.yaml:4:\d+: files\[0\]\.name: "\.chunks\/x\.bin" is inside "\.chunks\/", which is reserved/);
  });

  it('refuses to publish a file named .chunks', () => {
    const { repo, root } = newRegistry();
    const f = join(root, '.Chunks');
    writeFileSync(f, 'x');
    const r = cli(['publish', 'det', '1', f], { cwd: repo, env });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('may not be named .chunks');
    expect(git(['log', '--oneline'], { cwd: repo, env }).stdout.trim().split('\n')).toHaveLength(1);
  });

  it('makes no index where .gitattributes would keep it out of LFS (a registry tracking only *.bin)', () => {
    const { repo, root } = newRegistry();
    writeFileSync(join(repo, '.gitattributes'), '*.bin filter=lfs diff=lfs merge=lfs -text\n*.yaml text eol=lf\n');
    git(['commit', '-q', '--no-verify', '-am', 'track *.bin only'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    const bigPath = join(root, 'w.bin');
    writeFileSync(bigPath, randomBytes(5 << 20));
    ok(['publish', 'det', '1', bigPath], repo);
    expect(readFileSync(join(repo, 'registry/det/1/manifest.yaml'), 'utf8')).not.toContain('chunks:');
    expect(git(['ls-tree', '-r', '--name-only', 'HEAD', 'registry/det/1'], { cwd: repo, env }).stdout.trim().split('\n')).toEqual([
      'registry/det/1/manifest.yaml', 'registry/det/1/w.bin',
    ]);
    expect(git(['status', '--porcelain'], { cwd: repo, env }).stdout).toBe('');
    expect(git(['lfs', 'fsck'], { cwd: repo, env }).stdout).toContain('Git LFS fsck OK');
  });
});
