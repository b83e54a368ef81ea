import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, isolatedGitEnv, tempDir } from '../../test/helpers/env.ts';
import { gitObjectSize } from './git-object-size.ts';

const env = isolatedGitEnv();

function noisy(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

describe('gitObjectSize', () => {
  it('reads the size of loose, packed and deltified objects without reading them, as git cat-file -s says', async () => {
    const dir = tempDir('objsize-');
    const run = (...args: string[]): string => git(args, { cwd: dir, env }).stdout.trim();
    run('init', '-q', '-b', 'main');
    const big = noisy(3 << 20, 1);
    writeFileSync(join(dir, 'a.bin'), big);
    writeFileSync(join(dir, 'small.txt'), 'hello\n');
    run('add', '-A');
    run('commit', '-q', '-m', 'one');
    // A near copy of a.bin, so a pack stores one of them as a delta of the other.
    const edited = Buffer.concat([big.subarray(0, 1 << 20), Buffer.from('inserted'), big.subarray(1 << 20)]);
    writeFileSync(join(dir, 'b.bin'), edited);
    run('add', '-A');
    run('commit', '-q', '-m', 'two');
    const oids = ['a.bin', 'b.bin', 'small.txt'].map((f) => run('rev-parse', `HEAD:${f}`));
    const gitdir = join(dir, '.git');
    for (const oid of oids) expect(await gitObjectSize(gitdir, oid)).toBe(Number(run('cat-file', '-s', oid)));

    run('gc', '-q', '--aggressive');
    expect(run('count-objects', '-v')).toMatch(/^count: 0$/m); // everything is packed now
    // One of the two big blobs is a delta in the pack: its entry header holds the delta's size, not the blob's.
    const idx = readdirSync(join(gitdir, 'objects/pack')).find((n) => n.endsWith('.idx'))!;
    const deltas = run('verify-pack', '-v', join(gitdir, 'objects/pack', idx)).split('\n').filter((l) => / blob .* \d+ [0-9a-f]{40}$/.test(l));
    expect(deltas.length).toBeGreaterThan(0);
    for (const oid of oids) expect(await gitObjectSize(gitdir, oid)).toBe(Number(run('cat-file', '-s', oid)));
    expect(await gitObjectSize(gitdir, 'f'.repeat(40))).toBeUndefined();
  });
});
