/**
 * Which LFS objects a mirror fetches for a commit: every pointer under
 * registry/ (all versions, not only the current one) and each manifest's
 * chunk index; never a pointer-looking file elsewhere, a small plain blob, a
 * broken manifest or a pointer of a deleted version from history.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lfsObjectsAt } from '../../src/hub/mirror/lfs-scan.ts';
import { formatPointer } from '../../src/registry/lfs-pointer.ts';
import { git, isolatedGitEnv, tempDir } from '../helpers/env.ts';

const env = isolatedGitEnv();
const oid = (c: string): string => c.repeat(64);

describe('mirror: LFS objects of a commit', () => {
  it('lists every version\'s pointers and chunk indexes under registry/, nothing else, nothing from history', async () => {
    const dir = tempDir('mirror-scan-');
    git(['init', '-q', '-b', 'main', dir], { cwd: dir, env });
    const put = (rel: string, text: string): void => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    };
    put('registry/face/1/model.bin', formatPointer({ oid: oid('a'), size: 10 }));
    put('registry/face/2/model.bin', formatPointer({ oid: oid('b'), size: 20 }));
    put('registry/face/2/manifest.yaml', `name: face\nversion: "2"\nfiles:\n  - {name: model.bin, sha256: ${oid('b')}, size: 20, chunks: {oid: ${oid('c')}, size: 30}}\n`);
    put('registry/face/3/manifest.yaml', 'name: face\nfiles: [ {broken\n');
    put('registry/face/3/labels.txt', 'person\ncar\n');
    put('registry/gone/1/model.bin', formatPointer({ oid: oid('d'), size: 40 }));
    put('templates/x.bin', formatPointer({ oid: oid('e'), size: 50 }));
    // The same content under two versions is one object.
    put('registry/face/4/model.bin', formatPointer({ oid: oid('a'), size: 10 }));
    git(['add', '-A'], { cwd: dir, env });
    git(['commit', '-q', '-m', 'one'], { cwd: dir, env });
    git(['rm', '-q', '-r', 'registry/gone'], { cwd: dir, env });
    git(['commit', '-q', '-m', 'two'], { cwd: dir, env });
    const head = git(['rev-parse', 'HEAD'], { cwd: dir, env }).stdout.trim();

    const objs = await lfsObjectsAt(join(dir, '.git'), head);
    expect(objs.sort((x, y) => x.oid.localeCompare(y.oid))).toEqual([
      { oid: oid('a'), size: 10 },
      { oid: oid('b'), size: 20 },
      { oid: oid('c'), size: 30 },
    ]);
  });
});
