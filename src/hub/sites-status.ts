/**
 * The fleet's last reports: what each site's agent said about itself, kept in
 * memory for reads and persisted to `<data>/sites/<site>.json` (atomically)
 * for restarts.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { NAME_RE } from '../registry/schema.ts';
import { writeFileAtomic } from '../util/fsutil.ts';

export interface SiteRecord {
  site: string;
  /** ISO 8601 time the hub received the report. */
  receivedAt: string;
  report: Record<string, unknown>;
}

export function siteNameProblem(site: string): string | null {
  return NAME_RE.test(site) ? null : 'must start with a letter or digit and use only letters, digits, "_", "-" and "." (at most 128)';
}

export class SitesStatus {
  private readonly records = new Map<string, SiteRecord>();
  private readonly writes = new Map<string, Promise<void>>();
  readonly dir: string;

  constructor(dataDir: string, private readonly logger: Logger, private readonly now: () => Date = () => new Date()) {
    this.dir = join(dataDir, 'sites');
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
        if (rec.site === site && typeof rec.receivedAt === 'string' && rec.report && typeof rec.report === 'object') this.records.set(site, rec);
        else this.logger.warn({ file: join(this.dir, f) }, 'ignoring malformed site status file');
      } catch (err) {
        this.logger.warn({ file: join(this.dir, f), err: (err as Error).message }, 'ignoring unreadable site status file');
      }
    }
  }

  get size(): number {
    return this.records.size;
  }

  /** Store a report. Writes for one site are serialised so the file always holds the latest. */
  async put(site: string, report: Record<string, unknown>): Promise<SiteRecord> {
    const rec: SiteRecord = { site, receivedAt: this.now().toISOString(), report };
    this.records.set(site, rec);
    const prev = this.writes.get(site) ?? Promise.resolve();
    const write = prev.catch(() => {}).then(() => writeFileAtomic(join(this.dir, `${site}.json`), `${JSON.stringify(rec, null, 2)}\n`));
    this.writes.set(site, write);
    try {
      await write;
    } finally {
      if (this.writes.get(site) === write) this.writes.delete(site);
    }
    return rec;
  }

  /**
   * Every site's last report, flattened as `{...report, site, receivedAt}`
   * (the hub's two fields win over anything the report says), sorted by site.
   */
  list(filter?: (site: string) => boolean): Array<Record<string, unknown>> {
    return [...this.records.values()]
      .filter((r) => !filter || filter(r.site))
      .sort((a, b) => a.site.localeCompare(b.site))
      .map((r) => ({ ...r.report, site: r.site, receivedAt: r.receivedAt }));
  }

  /** Wait for pending writes (shutdown). */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.writes.values()]);
  }
}
