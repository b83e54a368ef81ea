/**
 * Crash safety: a pass killed with SIGKILL between any two durable steps
 * leaves the last good `current` in place and nothing partial under models/;
 * the next pass cleans up and converges.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { reconcile } from '../../src/reconcile/index.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { localFetcherFactory } from '../reconcile/helpers/local-fetcher.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const env = isolatedGitEnv();
let reg: TestRegistry;
let golden: string;

function blob(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13) & 0xff;
  return b;
}

function copyStore(from: string): string {
  const to = join(tempDir('crash-'), 'store');
  // cp -a keeps the hard links between models/ and objects/.
  const r = spawnSync('cp', ['-a', from, to]);
  if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
  return to;
}

function runChild(store: string, extra: { crashAt?: string; record?: string; hooks?: boolean }): { signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ registry: reg.dir, store, site: 'alpha', ...extra })], {
    encoding: 'utf8',
    env: { ...env, MODELSYNC_LOG_LEVEL: 'silent' },
    timeout: 60_000,
  });
  return { signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Every version directory under models/ is complete and every link names one; returns current per model. */
function checkInvariants(store: string): Record<string, string> {
  const currents: Record<string, string> = {};
  for (const model of readdirSync(join(store, 'models'))) {
    const dir = join(store, 'models', model);
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (name === 'current' || name === 'previous') {
        expect(lstatSync(p).isSymbolicLink(), `${model}/${name} is a symlink`).toBe(true);
        const target = readlinkSync(p);
        expect(existsSync(join(dir, target)), `${model}/${name} -> ${target} exists`).toBe(true);
        if (name === 'current') currents[model] = target;
        continue;
      }
      // A version directory: exactly the manifest's files, each with the right bytes.
      const manifest = parse(readFileSync(join(reg.dir, 'registry', model, name, 'manifest.yaml'), 'utf8')) as { files: Array<{ name: string; sha256: string; size: number }> };
      for (const f of manifest.files) {
        const bytes = readFileSync(join(p, f.name));
        expect(createHash('sha256').update(bytes).digest('hex'), `${model}/${name}/${f.name} verified`).toBe(f.sha256);
      }
      const count = (d: string): number => readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? count(join(d, e.name)) : 1), 0);
      expect(count(p), `${model}/${name} holds only manifest files`).toBe(manifest.files.length);
    }
  }
  return currents;
}

beforeAll(async () => {
  reg = TestRegistry.init(tempDir('crash-reg-'), env);
  reg.addVersion('face', '2025-01-01', { 'model.bin': blob(40_000, 1), 'sub/labels.txt': 'a\nb\n' });
  reg.addVersion('face', '2025-02-01', { 'model.bin': blob(50_000, 2), 'sub/labels.txt': 'a\nb\n', 'extra.bin': blob(1000, 3) });
  reg.addVersion('ssd', '1', { 'w.bin': blob(20_000, 4) });
  reg.addVersion('ssd', '2', { 'w.bin': blob(20_000, 5) });
  reg.setCurrent('face', '2025-01-01');
  reg.setCurrent('ssd', '1');
  reg.site('alpha', {});
  reg.commit('v1');
  golden = join(tempDir('golden-'), 'store');
  const first = await reconcile({ site: 'alpha', registry: reg.dir, store: golden, fetcher: localFetcherFactory() });
  expect(first.status).toBe('changed');
  reg.setCurrent('face', '2025-02-01');
  reg.setCurrent('ssd', '2');
  reg.commit('v2');
});

describe('a pass killed at any point', () => {
  it('leaves the last good current, nothing partial under models/, and the next pass converges', async () => {
    const recordFile = join(tempDir(), 'points.txt');
    const clean = runChild(copyStore(golden), { record: recordFile });
    expect(clean.signal).toBeNull();
    expect(JSON.parse(clean.stdout).status).toBe('changed');
    const points = readFileSync(recordFile, 'utf8').trim().split('\n');
    // The pass crosses every kind of durable step: registry, objects, builds, both links, state.
    for (const kind of ['step:lock', 'fetch:verified:', 'build:face/2025-02-01:linked', 'build:face/2025-02-01:in-place', 'switch:face:previous', 'switch:face:current', 'switch:ssd:current', 'step:record']) {
      expect(points.some((p) => p.startsWith(kind)), kind).toBe(true);
    }

    for (const point of points) {
      const store = copyStore(golden);
      const crashed = runChild(store, { crashAt: point });
      expect(crashed.signal, `killed at ${point}`).toBe('SIGKILL');
      const currents = checkInvariants(store);
      // current is always a complete version: the old one, or (after its switch) the new one.
      expect(['2025-01-01', '2025-02-01']).toContain(currents.face);
      expect(['1', '2']).toContain(currents.ssd);
      // The next pass takes over the dead pass's lock, removes its leftovers and converges.
      const next = await reconcile({ site: 'alpha', registry: reg.dir, store, fetcher: localFetcherFactory() });
      expect(next.errors, `pass after a crash at ${point}`).toEqual([]);
      expect(checkInvariants(store)).toEqual({ face: '2025-02-01', ssd: '2' });
      expect(readlinkSync(join(store, 'models/face/previous'))).toBe('2025-01-01');
      expect(readdirSync(join(store, 'tmp')).filter((n) => n !== 'downloads'), `tmp/ after a crash at ${point}`).toEqual([]);
      expect(existsSync(join(store, 'lock'))).toBe(false);
      // state.json is whole (old or new), never torn.
      expect(() => JSON.parse(readFileSync(join(store, 'state.json'), 'utf8'))).not.toThrow();
    }
  }, 300_000);

  it('killed after the switch, before its services were judged: the next pass with services judges it', async () => {
    const store = copyStore(golden);
    const crashed = runChild(store, { crashAt: 'hooks:verifying', hooks: true });
    expect(crashed.signal).toBe('SIGKILL');
    expect(checkInvariants(store)).toEqual({ face: '2025-02-01', ssd: '2' });
    const owed = JSON.parse(readFileSync(join(store, 'state.json'), 'utf8')) as { verifying: Array<{ model: string; version: string; from?: string }> };
    expect(owed.verifying.map((v) => `${v.model} ${v.from} → ${v.version}`)).toEqual(['face 2025-01-01 → 2025-02-01', 'ssd 1 → 2']);
    const judged: string[] = [];
    const next = await reconcile({
      site: 'alpha', registry: reg.dir, store, fetcher: localFetcherFactory(),
      hooks: { afterSwitch: async (changed) => (judged.push(...changed.map((c) => `${c.model}@${c.version}`)), { unhealthy: [] }), afterRollback: async () => {} },
    });
    expect(next.errors).toEqual([]);
    expect(judged).toEqual(['face@2025-02-01', 'ssd@2']);
    const state = JSON.parse(readFileSync(join(store, 'state.json'), 'utf8')) as { verifying: unknown[]; models: Record<string, { lastApplied?: string }> };
    expect(state.verifying).toEqual([]);
    expect(state.models.face?.lastApplied).toBe('2025-02-01');
  }, 60_000);
});
