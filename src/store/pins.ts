/**
 * Local break-glass pins (`modelsync pin`). Kept in their own file, written
 * atomically, so pinning never waits for a pass holding the store lock; a
 * pass reads the pins once at its start and reports them as drift.
 */
import { promises as fsp } from 'node:fs';
import { z } from 'zod';
import { StoreError } from '../errors.ts';
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

export async function setPin(layout: StoreLayout, model: string, version: string, now = new Date()): Promise<PinsFile> {
  checkModel(model);
  checkVersion(version);
  const f = await readPins(layout);
  f.pins[model] = { version, since: now.toISOString() };
  await writeFileAtomic(layout.pinsFile, `${JSON.stringify(f, null, 2)}\n`);
  return f;
}

/** Remove a pin; returns the removed version, or undefined if the model was not pinned. */
export async function removePin(layout: StoreLayout, model: string): Promise<string | undefined> {
  const f = await readPins(layout);
  const had = f.pins[model]?.version;
  if (had === undefined) return undefined;
  delete f.pins[model];
  await writeFileAtomic(layout.pinsFile, `${JSON.stringify(f, null, 2)}\n`);
  return had;
}
