/**
 * The site store: verified objects, version directories of hard links, the
 * `current` / `previous` links, state.json, pins and the lock. See
 * docs/site.md for the layout and the guarantees.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { mkdirDurable } from './durable-dirs.ts';
import { StoreLayout } from './layout.ts';
import { ObjectStore, readdirOrEmpty, storeFsError } from './objects.ts';
import { KeptChunkIndexes } from './chunk-indexes.ts';

export { StoreLayout, CURRENT, PREVIOUS } from './layout.ts';
export { ObjectStore, type ObjectRef } from './objects.ts';
export { KeptChunkIndexes } from './chunk-indexes.ts';
export { acquireLock, lockOwner, type StoreLock } from './lock.ts';
export { readState, writeState, emptyState, type StoreState, type ModelState, type DegradedEntry, type VerifyingEntry, type PassRecord } from './state.ts';
export { readPins, pinMap, setPin, removePin } from './pins.ts';
export { collectGarbage, planRetention, type GcReport, type GcOptions } from './gc.ts';
export {
  activate, restore, buildVersion, observeModel, listModels, readLink, versionIntact, setLink,
  type ObservedModel, type VersionFile, type BuildOutcome,
} from './versions.ts';
export { noBarrier, type Barrier } from './barrier.ts';

export class Store {
  readonly layout: StoreLayout;
  readonly objects: ObjectStore;
  readonly chunkIndexes: KeptChunkIndexes;
  constructor(root: string) {
    this.layout = new StoreLayout(root);
    this.objects = new ObjectStore(this.layout);
    this.chunkIndexes = new KeptChunkIndexes(this.layout);
  }

  /** Create the directories a pass writes into (idempotent). */
  async ensure(): Promise<void> {
    try {
      for (const d of [this.layout.root, this.layout.objectsDir, this.layout.modelsDir, this.layout.tmpDir, this.layout.downloadsDir]) {
        await mkdirDurable(d);
      }
    } catch (err) {
      throw storeFsError(`cannot create the store at ${this.layout.root}`, err);
    }
  }

  /**
   * Remove what an interrupted pass left under tmp/ (half-built version
   * directories, links not yet renamed, blobs not yet adopted). Partial
   * downloads are kept for resuming unless they are no longer wanted.
   */
  async cleanTmp(opts: { keepDownloads?: ReadonlySet<string> | 'all' } = {}): Promise<number> {
    let removed = 0;
    for (const name of await readdirOrEmpty(this.layout.tmpDir)) {
      if (name === 'downloads') continue;
      await fsp.rm(join(this.layout.tmpDir, name), { recursive: true, force: true });
      removed++;
    }
    if (opts.keepDownloads === 'all') return removed;
    for (const name of await readdirOrEmpty(this.layout.downloadsDir)) {
      const oid = name.replace(/\.part$/, '');
      if (opts.keepDownloads?.has(oid)) continue;
      await fsp.rm(join(this.layout.downloadsDir, name), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }
}
