/**
 * Per-site series on the hub's /metrics, read from the status store at
 * scrape time (nothing is kept between scrapes): one condition series per
 * known condition and site (1 for the current one, so alerts can say
 * `== 1`), the time of its last report, and one info series per model.
 */
import type { Metrics } from './metrics.ts';
import { KNOWN_CONDITIONS, str } from './site-condition.ts';
import type { SitesStatus } from './sites-status.ts';

export function registerSiteMetrics(m: Metrics, sites: SitesStatus): void {
  m.gaugeFamily('modelsync_hub_site_condition', 'A site\'s condition as the hub derives it (1 = current): Ready, Progressing, Degraded, Conflict, Waiting, Stale, Stopped, Failed, Stalled, or a newer agent\'s own.', function* () {
    for (const [site, c] of sites.allConditions()) {
      for (const k of KNOWN_CONDITIONS) yield { labels: { site, condition: k }, value: c.condition === k ? 1 : 0 };
      if (!(KNOWN_CONDITIONS as readonly string[]).includes(c.condition)) yield { labels: { site, condition: c.condition }, value: 1 };
    }
  });
  m.gaugeFamily('modelsync_hub_site_last_report_timestamp_seconds', 'When the hub last received a status report from the site (Unix time).', function* () {
    for (const rec of sites.records()) {
      const t = Date.parse(rec.receivedAt);
      if (Number.isFinite(t)) yield { labels: { site: rec.site }, value: t / 1000 };
    }
  });
  m.gaugeFamily('modelsync_hub_site_model_info', 'Always 1: a model on a site, with the version the registry declares for it and the one active there ("" for none).', function* () {
    for (const rec of sites.records()) {
      const models = Array.isArray(rec.report.models) ? (rec.report.models as Array<Record<string, unknown>>) : [];
      const seen = new Set<string>();
      for (const mm of models.slice(0, 200)) {
        const model = mm && typeof mm === 'object' ? str(mm.model, 128) : '';
        if (!model || seen.has(model)) continue;
        seen.add(model);
        yield { labels: { site: rec.site, model, declared: str(mm.declared, 64), active: str(mm.active, 64) }, value: 1 };
      }
    }
  });
}
