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
import { siteCondition, type SiteCondition } from './site-condition.ts';
import { SiteWrites } from './site-writes.ts';

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
  /** Write a record to disk (default: `<dir>/<site>.json`, atomically, the directory fsynced once per batch). Tests pass a no-op. */
  persist?: (file: string, text: string) => Promise<void>;
}

export function siteNameProblem(site: string): string | null {
  return NAME_RE.test(site) ? null : 'must start with a letter or digit and use only letters, digits, "_", "-" and "." (at most 128)';
}

export class SitesStatus extends EventEmitter<{ report: [SiteRecord]; transition: [Transition] }> {
  private readonly byName = new Map<string, SiteRecord>();
  /** Each site's condition as last derived (a report or a sweep). */
  private readonly conditions = new Map<string, SiteCondition>();
  /** Each site's last condition other than a pass's Progressing: what transitions are between. */
  private readonly settled = new Map<string, string>();
  private readonly history: Transition[] = [];
  /** Site names sorted as list() returns them; null after a new site. */
  private sorted: string[] | null = null;
  /** Each site's list() entry as JSON, with the condition it was made with. */
  private readonly fragments = new Map<string, { condition: string; reason: string; json: string }>();
  /** The whole fleet's listJson(), until a report or a condition changes. */
  private wholeJson: string | null = null;
  private seq = 0;
  private readonly now: () => Date;
  private readonly writes: SiteWrites;
  readonly historySize: number;
  readonly staleFactor: number;
  readonly dir: string;

  constructor(dataDir: string, private readonly logger: Logger, opts: SitesStatusOptions = {}) {
    super();
    this.dir = join(dataDir, 'sites');
    this.now = opts.now ?? (() => new Date());
    this.historySize = opts.historySize ?? 500;
    this.staleFactor = opts.staleFactor ?? 3;
    this.writes = new SiteWrites(this.dir, { writeFile: opts.persist });
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
          this.sorted = null;
          this.wholeJson = null;
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

  /**
   * Store a report. While the disk keeps up, this resolves once the report
   * is on disk (the hub answers the agent after that). When a batch of
   * writes is already under way, the report joins the next batch and this
   * resolves at once: a burst of reports (a push to a fleet, every agent
   * reporting its pass) is then answered at the speed of memory, not one
   * fsync per report, and written within one batch's time with only each
   * site's newest report (site-writes.ts). A crash in that window loses
   * those reports; the agents send their next one after their next pass.
   */
  async put(site: string, report: Record<string, unknown>): Promise<SiteRecord> {
    const rec: SiteRecord = { site, receivedAt: this.now().toISOString(), report };
    if (!this.byName.has(site)) this.sorted = null;
    this.byName.set(site, rec);
    this.fragments.delete(site);
    this.wholeJson = null;
    this.update(site, this.derive(rec));
    this.emit('report', rec);
    const behind = this.writes.busy;
    const written = this.writes.write(site, `${JSON.stringify(rec, null, 2)}\n`);
    if (!behind) await written;
    else written.catch((err: unknown) => this.logger.warn({ site, err: (err as Error).message }, 'could not write a site report to disk; it is kept in memory'));
    return rec;
  }

  /**
   * Every site's last report, flattened as `{...report, site, receivedAt,
   * condition, conditionReason}` (the hub's fields win over anything the
   * report says), sorted by site.
   */
  list(filter?: (site: string) => boolean): Array<Record<string, unknown>> {
    return this.sortedNames()
      .filter((site) => !filter || filter(site))
      .map((site) => {
        const r = this.byName.get(site)!;
        const c = this.conditions.get(site);
        return { ...r.report, site: r.site, receivedAt: r.receivedAt, condition: c?.condition ?? 'Unknown', conditionReason: c?.reason ?? '' };
      });
  }

  /**
   * `{"sites": list(filter)}` as JSON text, the same bytes JSON.stringify
   * would make, built from each site's cached fragment: only a site that
   * reported or changed condition since the last call is serialised again,
   * and the whole fleet's document is reused until anything changes. At
   * 1,000 sites, serialising every report for every GET took 50 ms of the
   * hub's one event loop (`wait` and `status --watch` poll it every 2 s).
   */
  listJson(filter?: (site: string) => boolean): string {
    if (!filter && this.wholeJson !== null) return this.wholeJson;
    const parts: string[] = [];
    for (const site of this.sortedNames()) {
      if (filter && !filter(site)) continue;
      const c = this.conditions.get(site);
      const condition = c?.condition ?? 'Unknown';
      const reason = c?.reason ?? '';
      let f = this.fragments.get(site);
      if (!f || f.condition !== condition || f.reason !== reason) {
        const r = this.byName.get(site)!;
        f = { condition, reason, json: JSON.stringify({ ...r.report, site: r.site, receivedAt: r.receivedAt, condition, conditionReason: reason }) };
        this.fragments.set(site, f);
      }
      parts.push(f.json);
    }
    const text = `{"sites":[${parts.join(',')}]}`;
    if (!filter) this.wholeJson = text;
    return text;
  }

  private sortedNames(): string[] {
    this.sorted ??= [...this.byName.keys()].sort((a, b) => a.localeCompare(b));
    return this.sorted;
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
    const prev = this.conditions.get(site);
    if (prev?.condition !== next.condition || prev.reason !== next.reason) this.wholeJson = null;
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
    await this.writes.flush();
  }
}
