/**
 * File watches that start passes: the store's pins.json (and the nudge a
 * `modelsync reconcile` leaves) and a local registry's refs. Each is
 * debounced; closing one clears its timer.
 */
import { promises as fsp } from 'node:fs';
import { relative, sep } from 'node:path';
import { watch } from 'chokidar';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { findGitDir } from '../registry/source.ts';
import { StoreLayout } from '../store/index.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { TriggerSource } from './queue.ts';

export interface WatchOptions {
  clock: Clock;
  logger: Logger;
  /** Quiet period before a change fires (default 250 ms). */
  debounceMs?: number;
  stopping(): boolean;
  fire(source: TriggerSource, detail?: string): void;
}

export interface Watch {
  close(): Promise<void>;
}

/**
 * `modelsync pin` / `unpin` is break-glass: a running agent applies it at
 * once (debounced), not at its next scheduled pass. Only pins.json in the
 * store's root is watched; a rewrite with the same content starts nothing.
 */
export async function watchPins(store: string, o: WatchOptions): Promise<Watch> {
  const layout = new StoreLayout(store);
  const file = layout.pinsFile;
  // The same watch covers the nudge a `modelsync reconcile` (--force, say) leaves after switching
  // versions under a running agent: its services are restarted and checked now, not at the next trigger.
  const nudge = layout.nudgeFile;
  const read = (f: string): Promise<string> => fsp.readFile(f, 'utf8').catch(() => '');
  let seen = await read(file);
  let nudged = await read(nudge);
  let timer: TimerHandle | undefined;
  await fsp.mkdir(layout.root, { recursive: true });
  const w = watch(layout.root, { ignoreInitial: true, depth: 0, followSymlinks: false, ignored: (p: string) => p !== layout.root && p !== file && p !== nudge });
  const onChange = (): void => {
    o.clock.clearTimeout(timer);
    timer = o.clock.setTimeout(() => {
      void Promise.all([read(file), read(nudge)]).then(([text, note]) => {
        if (o.stopping()) return;
        if (text !== seen) {
          seen = text;
          nudged = note;
          o.logger.info({ pins: file }, 'local pins changed: running a pass');
          o.fire('pin', 'pins.json changed');
        } else if (note !== nudged && note !== '') {
          nudged = note;
          o.logger.info({ by: note.trim() }, 'versions were switched outside the agent: running a pass');
          o.fire('manual', 'modelsync reconcile switched versions on this store');
        }
      });
    }, o.debounceMs ?? 250);
  };
  w.on('add', onChange).on('change', onChange).on('unlink', onChange);
  w.on('error', (err) => o.logger.warn({ err: errorMessage(err) }, 'pins watch error'));
  await new Promise<void>((resolve) => w.once('ready', () => resolve()));
  return {
    async close() {
      o.clock.clearTimeout(timer);
      await w.close();
    },
  };
}

/** A local registry: a ref update starts a pass (undefined when it cannot be watched; the schedule still runs). */
export async function watchLocalRegistry(registry: string, o: WatchOptions): Promise<Watch | undefined> {
  let gitdir: string;
  try {
    gitdir = (await findGitDir(registry)).gitdir;
  } catch (err) {
    o.logger.warn({ registry, err: errorMessage(err) }, 'cannot watch the local registry; relying on the schedule');
    return undefined;
  }
  const heads = `refs${sep}heads`;
  // Only ref updates matter: a pass reads the branch's commit, never the working tree.
  const ignored = (p: string): boolean => {
    const rel = relative(gitdir, p);
    return !(rel === '' || rel === 'packed-refs' || rel === 'refs' || rel === heads || rel.startsWith(`${heads}${sep}`));
  };
  await fsp.mkdir(`${gitdir}/refs/heads`, { recursive: true }).catch(() => {});
  let timer: TimerHandle | undefined;
  const w = watch(gitdir, { ignoreInitial: true, ignored, followSymlinks: false });
  const onChange = (p: string): void => {
    if (p.endsWith('.lock')) return;
    o.clock.clearTimeout(timer);
    timer = o.clock.setTimeout(() => o.fire('watch', 'registry refs changed'), o.debounceMs ?? 250);
  };
  w.on('add', onChange).on('change', onChange).on('unlink', onChange);
  w.on('error', (err) => o.logger.warn({ err: errorMessage(err) }, 'registry watch error'));
  await new Promise<void>((resolve) => w.once('ready', () => resolve()));
  return {
    async close() {
      o.clock.clearTimeout(timer);
      await w.close();
    },
  };
}
