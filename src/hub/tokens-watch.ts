/**
 * The hub follows its tokens file: `modelsync token add|revoke` (or an
 * editor) changes it and the next request is judged by the new table, with
 * no restart. The directory is watched, not the file, because editors and
 * `token` replace the file by rename. A file that does not parse keeps the
 * table in force and says why; a half-written file never locks everyone out.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { loadTokensFile, type TokenTable } from './auth.ts';

export interface TokensWatch {
  close(): void;
  /** Re-read now (tests, and the poll). */
  reload(): Promise<void>;
}

export function watchTokensFile(file: string, opts: { logger: Logger; onChange(table: TokenTable): number; debounceMs?: number; pollMs?: number }): TokensWatch {
  let last: string | null = null;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  void readFile(file, 'utf8').then((t) => { last ??= t; }, () => {});
  const reload = (): Promise<void> => {
    running = running.then(async () => {
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        return; // Mid-rename or removed: the next event or poll sees the new one.
      }
      if (text === last) return;
      try {
        const table = await loadTokensFile(file);
        last = text;
        const ended = opts.onChange(table);
        opts.logger.info({ file, tokens: table.size, streamsEnded: ended }, 'tokens file changed: new tokens in force');
      } catch (err) {
        last = text;
        opts.logger.error({ file, err: errorMessage(err) }, 'tokens file changed but is invalid; the previous tokens stay in force');
      }
    });
    return running;
  };
  const soon = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => void reload(), opts.debounceMs ?? 30);
  };
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dirname(file), (_event, name) => {
      if (name === null || name === basename(file)) soon();
    });
    watcher.on('error', (err) => opts.logger.warn({ file, err: err.message }, 'cannot watch the tokens file; polling it'));
  } catch (err) {
    opts.logger.warn({ file, err: errorMessage(err) }, 'cannot watch the tokens file; polling it');
  }
  // Some file systems (NFS, some containers' bind mounts) deliver no events: a slow poll backs the watch up.
  const poll = setInterval(() => void reload(), opts.pollMs ?? 5000);
  poll.unref();
  return {
    close: () => {
      clearTimeout(timer);
      clearInterval(poll);
      watcher?.close();
    },
    reload,
  };
}
