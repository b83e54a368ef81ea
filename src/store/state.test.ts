import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { StoreLayout } from './layout.ts';
import { readPins, removePin, setPin } from './pins.ts';
import { HISTORY_LIMIT, emptyState, readState, writeState } from './state.ts';

describe('state.json', () => {
  it('round-trips and keeps a bounded history', async () => {
    const layout = new StoreLayout(tempDir());
    const s = emptyState();
    for (let i = 0; i < HISTORY_LIMIT + 10; i++) s.history.push({ at: `t${i}`, status: 'in-sync', changed: [], bytesFetched: 0, durationMs: 1, conflicts: [], errors: [] });
    await writeState(layout, s);
    const back = (await readState(layout)).state;
    expect(back.history).toHaveLength(HISTORY_LIMIT);
    expect(back.history.at(-1)!.at).toBe(`t${HISTORY_LIMIT + 9}`);
    expect(readdirSync(layout.root)).toEqual(['state.json']); // no temp file left behind
  });

  it('moves an unusable state file aside and starts empty, with a warning', async () => {
    const layout = new StoreLayout(tempDir());
    writeFileSync(layout.stateFile, '{"format": 1, "models": ');
    const r = await readState(layout, { moveAsideCorrupt: true });
    expect(r.state).toEqual(emptyState());
    expect(r.warning).toMatch(/unusable/);
    expect(existsSync(layout.stateFile)).toBe(false);
    expect(readdirSync(layout.root).some((n) => n.startsWith('state.json.corrupt-'))).toBe(true);
  });
});

describe('pins', () => {
  it('sets, lists and removes pins; refuses bad names', async () => {
    const layout = new StoreLayout(tempDir());
    await setPin(layout, 'face', '2025-01-01', new Date('2026-01-01T00:00:00Z'));
    expect((await readPins(layout)).pins).toEqual({ face: { version: '2025-01-01', since: '2026-01-01T00:00:00.000Z' } });
    expect(await removePin(layout, 'face')).toBe('2025-01-01');
    expect(await removePin(layout, 'face')).toBeUndefined();
    await expect(setPin(layout, '../x', '1')).rejects.toThrow(/not a valid model name/);
    await expect(setPin(layout, 'face', 'current')).rejects.toThrow(/not a valid version/);
  });

  it('keeps every pin when several are set at once (two operators, two shells)', async () => {
    const layout = new StoreLayout(tempDir());
    const models = ['a', 'b', 'c', 'd', 'e', 'f'];
    await Promise.all(models.map((m, i) => setPin(layout, m, String(i))));
    expect(Object.keys((await readPins(layout)).pins).sort()).toEqual(models);
    await Promise.all(models.slice(0, 3).map((m) => removePin(layout, m)));
    expect(Object.keys((await readPins(layout)).pins).sort()).toEqual(['d', 'e', 'f']);
  });

  it('refuses to guess when the pins file is broken', async () => {
    const layout = new StoreLayout(tempDir());
    writeFileSync(join(layout.root, 'pins.json'), 'nope');
    await expect(readPins(layout)).rejects.toMatchObject({ code: 'StoreError' });
  });
});
