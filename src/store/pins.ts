/**
 * Local break-glass pins (`modelsync pin`). Kept in their own file, written
 * atomically, so pinning never waits for a pass holding the store lock; a
 * pass reads the pins once at its start and reports them as drift. Changes
 * are read-modify-write under a lock of their own (`pins.json.lock`, held for
 * milliseconds), so two pins set at once both stay.
 */
import { promises as fsp } from 'node:fs';
import { z } from 'zod';
import { LockedError, StoreError } from '../errors.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import type { StoreLayout } from './layout.ts';
import { checkModel, checkVersion } from './layout.ts';

const PinsFile = z.object({
  format: z.literal(1),
  pins: z.record(z.string(), z.object({ version: z.string(), since: z.string() })),
});
export type PinsFile = z.infer<typeof PinsFile>;

export async function readPins(layout: StoreLayout): Promise<PinsFile> {
  let text: string;
  try {
    text = await fsp.readFile(layout.pinsFile, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { format: 1, pins: {} };
    throw new StoreError(`cannot read ${layout.pinsFile}: ${(err as Error).message}`, { path: layout.pinsFile }, err);
  }
  try {
    return PinsFile.parse(JSON.parse(text));
  } catch (err) {
    // A pin is a deliberate human decision: never guess, make them fix it.
    throw new StoreError(`${layout.pinsFile} is unreadable (${(err as Error).message.split('\n')[0]}); fix or delete it`, { path: layout.pinsFile }, err);
  }
}

/** Pins as model → version. */
export async function pinMap(layout: StoreLayout): Promise<Record<string, string>> {
  const f = await readPins(layout);
  return Object.fromEntries(Object.entries(f.pins).map(([m, p]) => [m, p.version]));
}

/** A pins lock older than this was left by a process that died mid-change (changes take milliseconds). */
const PINS_LOCK_STALE_MS = 10_000;
const PINS_LOCK_WAIT_MS = 5_000;

async function withPinsLock<T>(layout: StoreLayout, change: () => Promise<T>): Promise<T> {
  const lock = `${layout.pinsFile}.lock`;
  const deadline = Date.now() + PINS_LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await fsp.open(lock, 'wx')).close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new StoreError(`cannot lock ${layout.pinsFile}: ${(err as Error).message}`, { path: lock }, err);
    }
    const st = await fsp.stat(lock).catch(() => null);
    if (st && Date.now() - st.mtimeMs > PINS_LOCK_STALE_MS) {
      await fsp.rm(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new LockedError(`${layout.pinsFile} is being changed by another command (${lock})`, { path: lock });
    await new Promise((r) => setTimeout(r, 10 + Math.random() * 20));
  }
  try {
    return await change();
  } finally {
    await fsp.rm(lock, { force: true });
  }
}

export async function setPin(layout: StoreLayout, model: string, version: string, now = new Date()): Promise<PinsFile> {
  checkModel(model);
  checkVersion(version);
  return withPinsLock(layout, async () => {
    const f = await readPins(layout);
    f.pins[model] = { version, since: now.toISOString() };
    await writeFileAtomic(layout.pinsFile, `${JSON.stringify(f, null, 2)}\n`);
    return f;
  });
}

/** Remove a pin; returns the removed version, or undefined if the model was not pinned. */
export async function removePin(layout: StoreLayout, model: string): Promise<string | undefined> {
  return withPinsLock(layout, async () => {
    const f = await readPins(layout);
    const had = f.pins[model]?.version;
    if (had === undefined) return undefined;
    delete f.pins[model];
    await writeFileAtomic(layout.pinsFile, `${JSON.stringify(f, null, 2)}\n`);
    return had;
  });
}
