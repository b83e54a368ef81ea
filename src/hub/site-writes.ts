/**
 * Persisting site reports in batches (group commit). Each file is written to
 * a temp name, fsynced and renamed over; a batch ends with one fsync of the
 * directory. Reports that arrive while a batch is being written wait for the
 * next one, and a site that reports again before its file was written has
 * only its newest report written (never an older one after a newer). One
 * file and two fsyncs per report, each awaited before the answer, made the
 * disk the ceiling of a fleet's report rate (about 650 a second on the
 * development machine's disk; see docs/benchmarks.md, "A fleet of 1,000
 * agents on one hub"); sites-status.ts decides when an answer waits.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../util/fsutil.ts';

export interface SiteWritesOptions {
  /** Write one file atomically, without the directory fsync (tests pass a no-op). */
  writeFile?: (file: string, text: string) => Promise<void>;
  /** fsync the directory once per batch. */
  syncDir?: (dir: string) => Promise<void>;
  /** Files written at once within a batch: bounds the file descriptors a burst of reports holds. */
  concurrency?: number;
}

interface Pending {
  text: string;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

export class SiteWrites {
  private pending = new Map<string, Pending>();
  private running: Promise<void> | null = null;
  private madeDir = false;
  private readonly writeFile: (file: string, text: string) => Promise<void>;
  private readonly syncDir: (dir: string) => Promise<void>;
  private readonly concurrency: number;
  private readonly customWriter: boolean;
  /** Batches written and files written (a superseded report is not a file). */
  batches = 0;
  files = 0;

  constructor(private readonly dir: string, opts: SiteWritesOptions = {}) {
    this.writeFile = opts.writeFile ?? ((file, text) => writeFileAtomic(file, text, 0o644, { syncDir: false, mkdir: false }));
    this.syncDir = opts.syncDir ?? fsyncDir;
    this.concurrency = opts.concurrency ?? 8;
    // A custom writer owns its storage: no directory to make or sync.
    if (opts.writeFile && !opts.syncDir) this.syncDir = async () => {};
    this.customWriter = opts.writeFile !== undefined;
    if (opts.writeFile) this.madeDir = true;
  }

  /** A batch is being written: a report now waits for the next one. */
  get busy(): boolean {
    return this.running !== null;
  }

  /** Resolves once `text`, or a newer text for the same site, is durable; rejects if that write failed. */
  write(site: string, text: string): Promise<void> {
    let p = this.pending.get(site);
    if (p) p.text = text;
    else {
      p = { text, waiters: [] };
      this.pending.set(site, p);
    }
    const entry = p;
    const done = new Promise<void>((resolve, reject) => entry.waiters.push({ resolve, reject }));
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
    return done;
  }

  /** Wait until everything handed to write() so far is written (shutdown). */
  async flush(): Promise<void> {
    while (this.running) await this.running.catch(() => {});
  }

  private async drain(): Promise<void> {
    // Let the reports of this tick join the first batch.
    await new Promise((r) => setImmediate(r));
    while (this.pending.size > 0) {
      const batch = [...this.pending];
      this.pending = new Map();
      const failed = new Map<string, unknown>();
      try {
        if (!this.madeDir) {
          await mkdir(this.dir, { recursive: true });
          this.madeDir = true;
        }
        let next = 0;
        const worker = async (): Promise<void> => {
          while (next < batch.length) {
            const [site, p] = batch[next++]!;
            await this.writeFile(join(this.dir, `${site}.json`), p.text).catch((err: unknown) => {
              failed.set(site, err);
              // The directory went away under us: make it again for the next batch.
              if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !this.customWriter) this.madeDir = false;
            });
          }
        };
        await Promise.all(Array.from({ length: Math.min(this.concurrency, batch.length) }, worker));
        await this.syncDir(this.dir);
      } catch (err) {
        for (const [site] of batch) if (!failed.has(site)) failed.set(site, err);
      }
      this.batches += 1;
      this.files += batch.length - failed.size;
      for (const [site, p] of batch) {
        const err = failed.get(site);
        for (const w of p.waiters) (err === undefined ? w.resolve() : w.reject(err));
      }
    }
  }
}
