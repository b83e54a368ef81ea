/**
 * End to end, the way a team works: `modelsync publish` a large model, push
 * it to `modelsync serve` (with `publish --push`, then with stock `git push`
 * and git-lfs's pre-push hook), and a site that holds the previous version
 * fetches only the changed ranges of the new one. A broken chunk index on
 * the hub costs a full download, never a wrong file.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderResult } from '../../src/commands/reconcile.ts';
import { reconcile } from '../../src/reconcile/index.ts';
import { formatBytes } from '../../src/reconcile/format.ts';
import { cliAsync, gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub, type TestHub } from '../helpers/hub.ts';

let env: NodeJS.ProcessEnv;
let th: TestHub;
beforeAll(async () => {
  env = isolatedGitEnv();
  th = await startTestHub({ tokens: true, sites: ['alpha'] });
});

/** `n` bytes that never repeat (so chunks are unique), reproducible. */
function noise(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let off = 0, i = 0; off < n; off += 32, i++) createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}

/** Every file under `dir` named `name` (the hub keeps objects at <repo>/lfs/objects/aa/bb/<oid>). */
function findFiles(dir: string, name: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...findFiles(p, name));
    else if (e.name === name) out.push(p);
  }
  return out;
}

describe('publish -> hub -> site, with chunk delta', () => {
  it('a small edit to a 6 MiB model reaches a site as a few ranges; a broken index on the hub means a full download', async () => {
    const root = tempDir();
    const repo = join(root, 'reg');
    const run = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      const r = await cliAsync(args, { cwd: repo, env: { ...env, ...extra } });
      if (r.status !== 0) throw new Error(`modelsync ${args.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
      return r.stdout;
    };
    expect((await cliAsync(['init', repo, '--bare-example'], { cwd: root, env })).status).toBe(0);
    await gitAsync(['remote', 'add', 'origin', th.repoUrl('models', th.secrets.publisher)], { cwd: repo, env });
    const size = 6 << 20;
    const v1 = noise(size, 'v1');
    writeFileSync(join(root, 'w.bin'), v1);

    // v1 through publish --push (our uploader), the site file through stock git.
    await run(['publish', 'big', '1', join(root, 'w.bin'), '--push'], { MODELSYNC_TOKEN: th.secrets.publisher });
    writeFileSync(join(repo, 'sites/alpha.yaml'), 'models: [big]\n');
    await gitAsync(['add', 'sites/alpha.yaml'], { cwd: repo, env });
    await gitAsync(['commit', '-q', '-m', 'site alpha runs big'], { cwd: repo, env: { ...env, MODELSYNC_NO_AUTOPUSH: '1' } });
    await gitAsync(['push', '-q', 'origin', 'main'], { cwd: repo, env });

    const store = join(tempDir('publish-delta-store-'), 'store');
    const lines: string[] = [];
    const pass = () => reconcile({
      site: 'alpha', registry: `${th.url}/models.git`, store, token: th.secrets.bySite.alpha,
      logger: pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) }),
    });
    const first = await pass();
    expect(first.errors).toEqual([]);
    // Nothing to reuse yet: the whole file, and its index (kept for the next upgrade, about 0.1 % more).
    const index1 = /chunks: \{oid: ([0-9a-f]{64}), size: (\d+)\}/.exec(readFileSync(join(repo, 'registry/big/1/manifest.yaml'), 'utf8'))!;
    // The hub sends the index (JSON text) gzip-compressed: about half its size crosses the network.
    const indexWire = first.bytesFetched - size;
    expect(indexWire).toBeGreaterThan(0);
    expect(indexWire).toBeLessThan(Number(index1[2]) * 0.7);
    const v1oid = createHash('sha256').update(v1).digest('hex');
    const kept1 = join(store, 'objects/chunks', v1oid.slice(0, 2), v1oid);
    expect(createHash('sha256').update(readFileSync(kept1)).digest('hex')).toBe(index1[1]);
    expect(renderResult(first)).toMatch(/^ {2}big\s+- → 1\s+activated \(install\)\s+6\.0 MiB fetched$/m);
    expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(v1)).toBe(true);
    // The reserved folder is the registry's business: nothing of it lands on the site.
    expect(readdirSync(join(store, 'models/big/current'))).toEqual(['w.bin']);

    // v2: 10 KiB inserted in the middle and a few bytes changed near the start; published, then pushed with stock git.
    const v2 = Buffer.concat([v1.subarray(0, 3 << 20), noise(10 * 1024, 'insert'), v1.subarray(3 << 20)]);
    v2.write('edited', 100_000);
    writeFileSync(join(root, 'w.bin'), v2);
    await run(['publish', 'big', '2', join(root, 'w.bin')]);
    const manifest2 = readFileSync(join(repo, 'registry/big/2/manifest.yaml'), 'utf8');
    const index2 = /chunks: \{oid: ([0-9a-f]{64}), size: (\d+)\}/.exec(manifest2);
    expect(index2).not.toBeNull();
    await gitAsync(['push', '-q', 'origin', 'main'], { cwd: repo, env });
    // git-lfs's pre-push (through the registry's hooks) uploaded the index with the model.
    expect(findFiles(th.data, index2![1]!)).toHaveLength(1);

    lines.length = 0;
    const second = await pass();
    expect(second.errors).toEqual([]);
    expect(second.changed).toEqual([{ model: 'big', from: '1', to: '2' }]);
    expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(v2)).toBe(true);
    expect(lines.join('')).toContain('chunk delta: object assembled');
    // v1's chunks came from the index kept with it, not from reading v1 again; v2's index is kept in turn.
    expect(lines.join('')).toMatch(/"keptIndexes":1.*chunk delta: object assembled/);
    const v2oid = createHash('sha256').update(v2).digest('hex');
    expect(createHash('sha256').update(readFileSync(join(store, 'objects/chunks', v2oid.slice(0, 2), v2oid))).digest('hex')).toBe(index2![1]);
    // The index (a few KB) and the changed chunks (a few 64 KiB), not 6 MiB.
    expect(second.bytesFetched).toBeLessThan(600 * 1024);
    expect(second.bytesFetched).toBeGreaterThan(10 * 1024);
    // The model's line says what crossed the network for it, against the version's size, like the summary.
    expect(second.models[0]).toMatchObject({ model: 'big', bytes: v2.length, bytesFetched: second.bytesFetched });
    const shown = renderResult(second);
    expect(shown).toContain(`activated (upgrade)  ${formatBytes(second.bytesFetched)} fetched of 6.0 MiB\n`);
    expect(shown).toContain(`(1 changed, ${formatBytes(second.bytesFetched)} fetched, `);
    const state = JSON.parse(readFileSync(join(store, 'state.json'), 'utf8')) as { history: Array<{ bytesFetched?: number }> };
    expect(JSON.stringify(state.history.at(-1))).toContain(`"bytesFetched":${second.bytesFetched}`);

    // v3, whose index is corrupted on the hub: the site falls back to the whole file, verified.
    const v3 = Buffer.from(v2);
    v3.write('again', 5_000_000);
    writeFileSync(join(root, 'w.bin'), v3);
    await run(['publish', 'big', '3', join(root, 'w.bin'), '--push'], { MODELSYNC_TOKEN: th.secrets.publisher });
    const index3 = /chunks: \{oid: ([0-9a-f]{64}), size: (\d+)\}/.exec(readFileSync(join(repo, 'registry/big/3/manifest.yaml'), 'utf8'))!;
    const onHub = findFiles(th.data, index3[1]!);
    expect(onHub).toHaveLength(1);
    writeFileSync(onHub[0]!, Buffer.alloc(Number(index3[2]), '{'));
    lines.length = 0;
    const third = await pass();
    expect(third.errors).toEqual([]);
    expect(readFileSync(join(store, 'models/big/current/w.bin')).equals(v3)).toBe(true);
    expect(lines.join('')).toContain('chunk delta failed; downloading the object normally');
    expect(third.bytesFetched).toBeGreaterThanOrEqual(v3.length);
    expect(existsSync(join(store, 'models/big/3/.chunks'))).toBe(false);
    // A broken index is never kept.
    const v3oid = createHash('sha256').update(v3).digest('hex');
    expect(existsSync(join(store, 'objects/chunks', v3oid.slice(0, 2), v3oid))).toBe(false);
  });
});
