/**
 * The fleet's last reports: what each site's agent said about itself, kept in
 * memory for reads and persisted to `<data>/sites/<site>.json` (atomically)
 * for restarts.
 */
import { EventEmitter } from 'node:events';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { NAME_RE } from '../registry/schema.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import { siteCondition, type SiteCondition } from './site-condition.ts';

export interface SiteRecord {
  site: string;
  /** ISO 8601 time the hub received the report. */
  receivedAt: string;
  report: Record<string, unknown>;
}

/** A site's condition changed (from null: the site's first report since the hub started). */
export interface Transition {
  seq: number;
  /** ISO time the hub saw the change. */
  at: string;
  site: string;
  from: string | null;
  to: string;
  reason: string;
}

export interface SitesStatusOptions {
  now?: () => Date;
  /** Transitions kept in memory for the dashboard (default 500). */
  historySize?: number;
  /** Missed schedule periods after which a silent site is Stale (default 3). */
  staleFactor?: number;
  /** Write a record to disk (default: `<dir>/<site>.json`, atomically). Benchmarks pass a no-op. */
  persist?: (file: string, text: string) => Promise<void>;
}

export function siteNameProblem(site: string): string | null {
  return NAME_RE.test(site) ? null : 'must start with a letter or digit and use only letters, digits, "_", "-" and "." (at most 128)';
}

export class SitesStatus extends EventEmitter<{ report: [SiteRecord]; transition: [Transition] }> {
  private readonly byName = new Map<string, SiteRecord>();
  private readonly writes = new Map<string, Promise<void>>();
  /** Each site's condition as last derived (a report or a sweep). */
  private readonly conditions = new Map<string, SiteCondition>();
  /** Each site's last condition other than a pass's Progressing: what transitions are between. */
  private readonly settled = new Map<string, string>();
  private readonly history: Transition[] = [];
  private seq = 0;
  private readonly now: () => Date;
  private readonly persist: (file: string, text: string) => Promise<void>;
  readonly historySize: number;
  readonly staleFactor: number;
  readonly dir: string;

  constructor(dataDir: string, private readonly logger: Logger, opts: SitesStatusOptions = {}) {
    super();
    this.dir = join(dataDir, 'sites');
    this.now = opts.now ?? (() => new Date());
    this.historySize = opts.historySize ?? 500;
    this.staleFactor = opts.staleFactor ?? 3;
    this.persist = opts.persist ?? ((file, text) => writeFileAtomic(file, text));
  }

  /** Load what earlier runs persisted; an unreadable file is skipped with a warning, not fatal. */
  async load(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const f of names) {
      if (!f.endsWith('.json')) continue;
      const site = f.slice(0, -5);
      if (siteNameProblem(site)) continue;
      try {
        const rec = JSON.parse(await readFile(join(this.dir, f), 'utf8')) as SiteRecord;
        if (rec.site === site && typeof rec.receivedAt === 'string' && rec.report && typeof rec.report === 'object') {
          this.byName.set(site, rec);
          const c = this.derive(rec);
          this.conditions.set(site, c);
          this.settled.set(site, c.condition);
        }
        else this.logger.warn({ file: join(this.dir, f) }, 'ignoring malformed site status file');
      } catch (err) {
        this.logger.warn({ file: join(this.dir, f), err: (err as Error).message }, 'ignoring unreadable site status file');
      }
    }
  }

  get size(): number {
    return this.byName.size;
  }

  /** Store a report. Writes for one site are serialised so the file always holds the latest. */
  async put(site: string, report: Record<string, unknown>): Promise<SiteRecord> {
    const rec: SiteRecord = { site, receivedAt: this.now().toISOString(), report };
    this.byName.set(site, rec);
    this.update(site, this.derive(rec));
    this.emit('report', rec);
    const prev = this.writes.get(site) ?? Promise.resolve();
    const write = prev.catch(() => {}).then(() => this.persist(join(this.dir, `${site}.json`), `${JSON.stringify(rec, null, 2)}\n`));
    this.writes.set(site, write);
    try {
      await write;
    } finally {
      if (this.writes.get(site) === write) this.writes.delete(site);
    }
    return rec;
  }

  /**
   * Every site's last report, flattened as `{...report, site, receivedAt,
   * condition, conditionReason}` (the hub's fields win over anything the
   * report says), sorted by site.
   */
  list(filter?: (site: string) => boolean): Array<Record<string, unknown>> {
    return [...this.byName.values()]
      .filter((r) => !filter || filter(r.site))
      .sort((a, b) => a.site.localeCompare(b.site))
      .map((r) => {
        const c = this.conditions.get(r.site);
        return { ...r.report, site: r.site, receivedAt: r.receivedAt, condition: c?.condition ?? 'Unknown', conditionReason: c?.reason ?? '' };
      });
  }

  /** Every site's last record, in no particular order. */
  records(): IterableIterator<SiteRecord> {
    return this.byName.values();
  }

  /** A site's last record, or undefined. */
  get(site: string): SiteRecord | undefined {
    return this.byName.get(site);
  }

  /** A site's condition as of the last report or sweep. */
  condition(site: string): SiteCondition | undefined {
    return this.conditions.get(site);
  }

  /** Every site's condition, by site name. */
  allConditions(): ReadonlyMap<string, SiteCondition> {
    return this.conditions;
  }

  /** The last transitions, oldest first (at most historySize). */
  transitions(): readonly Transition[] {
    return this.history;
  }

  /**
   * Re-derive every site's condition as of now: a site that stopped
   * reporting turns Stale here, since no report will say so. The hub runs
   * this on a timer.
   */
  sweep(): void {
    for (const rec of this.byName.values()) this.update(rec.site, this.derive(rec));
  }

  private derive(rec: SiteRecord): SiteCondition {
    return siteCondition(rec.report, Date.parse(rec.receivedAt), this.now().getTime(), this.staleFactor);
  }

  /**
   * Every pass passes through Progressing; a transition is recorded only
   * when the settled condition changes (Ready → Progressing → Ready is no
   * news, Degraded → Progressing → Ready is a recovery, and a new site's
   * first transition is to where its first pass lands).
   */
  private update(site: string, next: SiteCondition): void {
    this.conditions.set(site, next);
    const was = this.settled.get(site);
    if (next.condition === 'Progressing') return;
    if (was === next.condition) return;
    this.settled.set(site, next.condition);
    this.seq += 1;
    const t: Transition = { seq: this.seq, at: this.now().toISOString(), site, from: was ?? null, to: next.condition, reason: next.reason.slice(0, 300) };
    this.history.push(t);
    // Dropping from the front of a small array is cheap; the ring never exceeds historySize.
    if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
    this.emit('transition', t);
  }

  /** Wait for pending writes (shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.writes.values()]);
  }
}
