import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { sha256Hex } from '../util/hash.ts';
import { Store, activate, buildVersion, collectGarbage, type VersionFile } from './index.ts';

async function storeWith(versions: Record<string, Record<string, string>>, active: string[]): Promise<Store> {
  const store = new Store(join(tempDir(), 'store'));
  await store.ensure();
  for (const [version, files] of Object.entries(versions)) {
    const list: VersionFile[] = [];
    for (const [name, text] of Object.entries(files)) {
      const obj = { oid: sha256Hex(text), size: Buffer.byteLength(text) };
      if (!(await store.objects.has(obj))) await store.objects.writeVerified(Buffer.from(text), obj);
      list.push({ name, ...obj });
    }
    await buildVersion(store.layout, 'm', version, list);
  }
  for (const v of active) await activate(store.layout, 'm', v);
  return store;
}

describe('collectGarbage', () => {
  it('keeps current, previous and N newest; frees only objects no kept version uses', async () => {
    const store = await storeWith(
      {
        '2025-01-01': { 'a.bin': 'one', 'shared.txt': 'same' },
        '2025-02-01': { 'a.bin': 'two', 'shared.txt': 'same' },
        '2025-03-01': { 'a.bin': 'three', 'shared.txt': 'same' },
        '2025-04-01': { 'a.bin': 'four', 'shared.txt': 'same' },
        '2025-05-01': { 'a.bin': 'five', 'shared.txt': 'same' },
      },
      ['2025-02-01', '2025-05-01'], // current 05, previous 02
    );
    const dry = await collectGarbage(store.layout, { keep: 1, dryRun: true });
    expect(dry.versionsRemoved.map((v) => v.version)).toEqual(['2025-01-01', '2025-03-01']);
    expect(dry.objectsRemoved).toBe(2);
    expect(dry.bytesFreed).toBe('one'.length + 'three'.length);
    expect(existsSync(store.layout.versionDir('m', '2025-01-01'))).toBe(true); // dry run removed nothing

    const real = await collectGarbage(store.layout, { keep: 1 });
    expect(real).toMatchObject({ objectsRemoved: 2, bytesFreed: 8, dryRun: false });
    expect(existsSync(store.layout.versionDir('m', '2025-01-01'))).toBe(false);
    expect(existsSync(store.layout.versionDir('m', '2025-04-01'))).toBe(true);
    expect(existsSync(store.objects.path(sha256Hex('one')))).toBe(false);
    expect(existsSync(store.objects.path(sha256Hex('same')))).toBe(true);
  });

  it('never removes protected versions (pins, what a pass wants)', async () => {
    const store = await storeWith({ '1': { f: 'a' }, '2': { f: 'b' }, '3': { f: 'c' } }, ['3']);
    const r = await collectGarbage(store.layout, { keep: 0, protect: new Map([['m', new Set(['1'])]]) });
    expect(r.versionsRemoved).toEqual([{ model: 'm', version: '2' }]);
  });

  it('orders by version scheme, not by text (10 is newer than 9)', async () => {
    const store = await storeWith({ '8': { f: '8' }, '9': { f: '9' }, '10': { f: '10' }, '11': { f: '11' } }, ['11']);
    const r = await collectGarbage(store.layout, { keep: 1, dryRun: true });
    expect(r.versionsRemoved.map((v) => v.version)).toEqual(['8', '9']);
  });

  it('removes objects no version links to (left by a failed pass)', async () => {
    const store = await storeWith({ '1': { f: 'a' } }, ['1']);
    await store.objects.writeVerified(Buffer.from('orphan'), { oid: sha256Hex('orphan'), size: 6 });
    mkdirSync(join(store.layout.root, 'unrelated'));
    writeFileSync(join(store.layout.root, 'unrelated', 'x'), 'x');
    const r = await collectGarbage(store.layout, { keep: 3 });
    expect(r).toMatchObject({ versionsRemoved: [], objectsRemoved: 1, bytesFreed: 6 });
  });

  it('removes the kept chunk index of an object it removes, and keeps the others', async () => {
    const store = await storeWith({ '1': { f: 'one' }, '2': { f: 'two' }, '3': { f: 'three' } }, ['3']);
    for (const t of ['one', 'two', 'three']) await store.chunkIndexes.keep(sha256Hex(t), Buffer.from(`index of ${t}`));
    // One left over by a crash after its object went: removed too.
    await store.chunkIndexes.keep('ab'.repeat(32), Buffer.from('stray'));
    const r = await collectGarbage(store.layout, { keep: 1 });
    expect(r.versionsRemoved).toEqual([{ model: 'm', version: '1' }]);
    expect(await store.chunkIndexes.read(sha256Hex('one'), 1 << 20)).toBeUndefined();
    expect(await store.chunkIndexes.read('ab'.repeat(32), 1 << 20)).toBeUndefined();
    expect((await store.chunkIndexes.read(sha256Hex('two'), 1 << 20))?.toString()).toBe('index of two');
    expect((await store.chunkIndexes.read(sha256Hex('three'), 1 << 20))?.toString()).toBe('index of three');
  });
});
