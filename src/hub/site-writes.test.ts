/**
 * Site reports on disk at fleet rates: batched, coalesced per site, never an
 * older report after a newer one, failures reported to their own writers,
 * and the fleet list's cached JSON the same as serialising it afresh.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/env.ts';
import { silentLogger } from '../log.ts';
import { fsyncDir } from '../util/fsutil.ts';
import { SiteWrites } from './site-writes.ts';
import { SitesStatus } from './sites-status.ts';

describe('SiteWrites', () => {
  it('writes a burst in batches with one directory fsync each, and only the newest report of a site', async () => {
    const dir = join(tempDir('site-writes-'), 'sites');
    let dirSyncs = 0;
    const w = new SiteWrites(dir, { syncDir: async (d) => (dirSyncs++, fsyncDir(d)) });
    // 200 sites report in one tick, then each reports twice more while the first batch is on its way.
    const all: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) all.push(w.write(`s${i}`, `first ${i}\n`));
    await new Promise((r) => setImmediate(r));
    expect(w.busy).toBe(true);
    for (let i = 0; i < 200; i++) all.push(w.write(`s${i}`, `second ${i}\n`), w.write(`s${i}`, `third ${i}\n`));
    await Promise.all(all);
    for (let i = 0; i < 200; i++) expect(readFileSync(join(dir, `s${i}.json`), 'utf8')).toBe(`third ${i}\n`);
    // 600 reports, at most 400 files (the second of each site was superseded before it was written) in a few batches.
    expect(w.files).toBeLessThanOrEqual(400);
    expect(w.batches).toBeLessThan(10);
    expect(dirSyncs).toBe(w.batches);
    expect(w.busy).toBe(false);
  });

  it('a failed write rejects its own site’s writers and no one else’s', async () => {
    const dir = join(tempDir('site-writes-'), 'sites');
    const written: string[] = [];
    const w = new SiteWrites(dir, {
      writeFile: async (file, text) => {
        if (file.endsWith('/bad.json')) throw new Error('disk says no');
        written.push(text);
      },
    });
    const good = w.write('good', 'g');
    const bad = w.write('bad', 'b');
    await expect(bad).rejects.toThrow('disk says no');
    await expect(good).resolves.toBeUndefined();
    expect(written).toEqual(['g']);
    // The next report of the bad site is tried again.
    await expect(w.write('bad', 'b2')).rejects.toThrow('disk says no');
  });
});

describe('SitesStatus on disk and in the fleet list', () => {
  it('a report answered while the writer is idle is on disk; a burst is all on disk after flush', async () => {
    const data = tempDir('sites-status-');
    const s = new SitesStatus(data, silentLogger);
    await s.put('alpha', { health: 'Ready' });
    expect(JSON.parse(readFileSync(join(data, 'sites', 'alpha.json'), 'utf8'))).toMatchObject({ site: 'alpha', report: { health: 'Ready' } });
    await Promise.all(Array.from({ length: 100 }, (_, i) => s.put(`site-${i}`, { health: 'Ready', n: i })));
    await s.flush();
    for (const i of [0, 50, 99]) expect(JSON.parse(readFileSync(join(data, 'sites', `site-${i}.json`), 'utf8')).report.n).toBe(i);
    const again = new SitesStatus(data, silentLogger);
    await again.load();
    expect(again.size).toBe(101);
    expect(existsSync(join(data, 'sites', 'site-99.json'))).toBe(true);
  });

  it('listJson is exactly JSON.stringify of list(), through new sites, reports, conditions turning Stale and filters', async () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const s = new SitesStatus('/nonexistent', silentLogger, { now: () => new Date(now), persist: async () => {} });
    const same = (filter?: (site: string) => boolean): void => expect(s.listJson(filter)).toBe(JSON.stringify({ sites: s.list(filter) }));
    same();
    await s.put('zeta', { health: 'Ready', schedule: '* * * * *' });
    await s.put('alpha', { health: 'Degraded', lastError: 'boom "quoted" \u001b[2J', site: 'spoofed' });
    same();
    const cached = s.listJson();
    expect(s.listJson()).toBe(cached);
    await s.put('mid', { health: 'Progressing', nested: { a: [1, 2, { b: null }] } });
    same();
    expect(JSON.parse(s.listJson()).sites.map((x: { site: string }) => x.site)).toEqual(['alpha', 'mid', 'zeta']);
    await s.put('alpha', { health: 'Ready' });
    same();
    // Ten minutes of silence: the sweep turns the every-minute site Stale, and the list says so.
    now += 10 * 60_000;
    s.sweep();
    same();
    expect(JSON.parse(s.listJson()).sites.find((x: { site: string }) => x.site === 'zeta').condition).toBe('Stale');
    same((site) => site !== 'mid');
    same((site) => site === 'nobody');
  });
});
