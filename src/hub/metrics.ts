/**
 * Prometheus text exposition for the hub, `modelsync_hub_*`. A handful of
 * counters and gauges with low-cardinality labels (route names, never repo
 * names or tokens), rendered by hand: no client library needed for this.
 */
type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
  /** Gauges read at scrape time. */
  collect?: () => number;
  /** Labelled gauges read at scrape time (per-site series). */
  collectMany?: () => Iterable<{ labels: Labels; value: number }>;
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  counter(name: string, help: string): (labels?: Labels, by?: number) => void {
    const f = this.family(name, help, 'counter');
    return (labels = {}, by = 1) => {
      const key = labelKey(labels);
      const cur = f.values.get(key);
      if (cur) cur.value += by;
      else f.values.set(key, { labels, value: by });
    };
  }

  gauge(name: string, help: string, collect?: () => number): (value: number, labels?: Labels) => void {
    const f = this.family(name, help, 'gauge');
    if (collect) f.collect = collect;
    return (value, labels = {}) => {
      f.values.set(labelKey(labels), { labels, value });
    };
  }

  /** A gauge family whose labelled samples are read at scrape time, so nothing is kept between scrapes. */
  gaugeFamily(name: string, help: string, collect: () => Iterable<{ labels: Labels; value: number }>): void {
    this.family(name, help, 'gauge').collectMany = collect;
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
      if (f.collect) out.push(`${f.name} ${f.collect()}`);
      if (f.collectMany) for (const { labels, value } of f.collectMany()) out.push(`${f.name}${formatLabels(labels)} ${value}`);
      else if (f.values.size === 0 && f.type === 'counter') out.push(`${f.name} 0`);
      for (const { labels, value } of f.values.values()) out.push(`${f.name}${formatLabels(labels)} ${value}`);
    }
    return `${out.join('\n')}\n`;
  }

  /** One sample's current value (tests and the dashboard read these). */
  value(name: string, labels: Labels = {}): number {
    const f = this.families.get(name);
    if (!f) return 0;
    if (f.collect) return f.collect();
    return f.values.get(labelKey(labels))?.value ?? 0;
  }

  private family(name: string, help: string, type: Family['type']): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, type, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }
}

function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${labels[k]!.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',')}}`;
}
