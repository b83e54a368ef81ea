/**
 * Which numeric version directory of a serving view holds which store
 * version, and which N comes next. Pure: the state is read and written by
 * view.ts. N only ever grows (a rollback is served as a new N too, unless the
 * version it goes back to is still on disk as the instant fallback), so the
 * newest N is always what Git declares and a number never means two things.
 */
import { z } from 'zod';
import { ServiceError } from '../errors.ts';

const Entry = z.strictObject({
  n: z.int().positive(),
  version: z.string().min(1),
  at: z.string(),
  /** The server did not load it: never a fallback, removed at the next prune. */
  failed: z.boolean().optional(),
});
const ModelView = z.strictObject({
  next: z.int().positive(),
  served: z.int().positive().optional(),
  entries: z.array(Entry),
});
const ViewState = z.strictObject({ format: z.literal(1), models: z.record(z.string(), ModelView) });
export type ViewEntry = z.infer<typeof Entry>;
export type ModelView = z.infer<typeof ModelView>;
export type ViewState = z.infer<typeof ViewState>;

/** The file in the view's directory that holds this (hidden, so neither OVMS nor Triton takes it for a model). */
export const STATE_FILE = '.modelsync-serving.json';

export function emptyViewState(): ViewState {
  return { format: 1, models: {} };
}

/** Parse the state file; a damaged one is an error naming it (N must never be reused, so it is not guessed). */
export function parseViewState(text: string, file: string): ViewState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ServiceError(`${file}: not valid JSON (${(err as Error).message}); fix or remove it (numbering restarts above the highest version directory left)`, { file });
  }
  const r = ViewState.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ServiceError(`${file}: ${i.path.join('.') || '(top)'}: ${i.message}`, { file });
  }
  return r.data;
}

/**
 * A model's view, with `next` above every N found on disk: a state file lost
 * or restored from a backup never hands out a number a directory still has.
 */
export function modelView(state: ViewState, model: string, onDisk: readonly number[] = []): ModelView {
  const v = state.models[model] ?? { next: 1, entries: [] };
  const floor = Math.max(0, ...onDisk, ...v.entries.map((e) => e.n)) + 1;
  return { ...v, next: Math.max(v.next, floor), entries: [...v.entries] };
}

/** Hand out the next N for `version`. */
export function allocate(v: ModelView, version: string, at: string): { view: ModelView; n: number } {
  const n = v.next;
  return { view: { ...v, next: n + 1, entries: [...v.entries, { n, version, at }] }, n };
}

export function markServed(v: ModelView, n: number): ModelView {
  return { ...v, served: n, entries: v.entries.map((e) => (e.n === n ? { ...e, failed: undefined } : e)).map(dropUndefined) };
}

export function markFailed(v: ModelView, n: number): ModelView {
  return { ...v, entries: v.entries.map((e) => (e.n === n ? { ...e, failed: true } : e)) };
}

/**
 * The N to go back to for `version`: the newest N that holds it, loaded
 * before (not failed), other than `except`, and still on disk.
 */
export function fallbackFor(v: ModelView, version: string, onDisk: readonly number[], except?: number): number | undefined {
  const there = new Set(onDisk);
  const hits = v.entries.filter((e) => e.version === version && !e.failed && e.n !== except && there.has(e.n));
  return hits.length ? Math.max(...hits.map((e) => e.n)) : undefined;
}

/** The version a view serves, if any. */
export function servedVersion(v: ModelView): string | undefined {
  return v.served === undefined ? undefined : v.entries.find((e) => e.n === v.served)?.version;
}

/**
 * Retention: the served N stays, and the `keep` newest good ones below it
 * (the first is the instant fallback); failed ones and older ones go. A
 * number on disk the state does not know (left by a crash between build and
 * record) goes too, unless it is the served one.
 */
export function planPrune(v: ModelView, onDisk: readonly number[], keep: number): { keep: number[]; remove: number[] } {
  const served = v.served;
  const good = v.entries.filter((e) => !e.failed && e.n !== served && (served === undefined || e.n < served)).map((e) => e.n).sort((a, b) => b - a);
  const kept = new Set<number>([...(served !== undefined ? [served] : []), ...good.slice(0, keep)]);
  return { keep: [...kept].sort((a, b) => a - b), remove: onDisk.filter((n) => !kept.has(n)).sort((a, b) => a - b) };
}

/** Forget entries whose directory is gone, so the state does not grow without bound. */
export function forgetRemoved(v: ModelView, onDisk: readonly number[]): ModelView {
  const there = new Set(onDisk);
  return { ...v, entries: v.entries.filter((e) => there.has(e.n)) };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
}
