/**
 * The gate's query against the real thing: Debian's `prometheus` scraping a
 * tiny exporter of the test's own every second. The answers the parser
 * reads are Prometheus's own (labels, string values, an error for bad
 * PromQL, an empty vector for a missing series), and a value the exporter
 * lowers below `min` fails the gate. Skipped when prometheus is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gateVerdict } from '../../src/gate/metric-gate.ts';
import { queryMetric } from '../../src/gate/query.ts';
import { MetricGateSpec } from '../../src/registry/schema.ts';
import { tempDir } from '../helpers/env.ts';
import { freePort } from './helpers/prom.ts';

const PROMETHEUS = '/usr/bin/prometheus';
let child: ChildProcess | undefined;
let exporter: Server | undefined;
afterAll(async () => {
  if (child && child.exitCode === null) {
    const gone = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  }
  await new Promise<void>((r) => (exporter ? exporter.close(() => r()) : r()));
});

const clock = { now: () => Date.now() };
async function until<T>(f: () => Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!existsSync(PROMETHEUS))('metric gate against a real Prometheus', () => {
  it('reads its answers and fails on a value below min', async () => {
    let fps = 20;
    exporter = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(`# TYPE fps gauge\nfps{model="face"} ${fps}\n`);
    });
    await new Promise<void>((r) => exporter!.listen(0, '127.0.0.1', () => r()));
    const target = `127.0.0.1:${(exporter.address() as AddressInfo).port}`;
    const dir = tempDir('gate-prom-');
    writeFileSync(join(dir, 'prometheus.yml'), `global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: detector\n    static_configs: [{targets: ["${target}"]}]\n`);
    const port = await freePort();
    child = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}/api/v1/query`;
    const gate = (query: string) => MetricGateSpec.parse({ url, query, min: 15, for: '2s', every: '1s' });

    const first = await until(async () => {
      const s = await queryMetric(fetch, gate('fps{model="face"}'), clock);
      return s.ok && s.series.length > 0 ? s : undefined;
    }, 'the first scrape');
    expect(first.ok && first.series).toEqual([{ labels: { __name__: 'fps', instance: target, job: 'detector', model: 'face' }, value: 20 }]);

    const bad = await queryMetric(fetch, gate('fps{'), clock);
    expect(bad.ok ? 'ok' : bad.error).toMatch(/answered 400: the query failed \(status "error": .*parse error/);
    const none = await queryMetric(fetch, gate('no_such_metric_total'), clock);
    expect(none).toMatchObject({ ok: true, series: [] });
    const scalar = await queryMetric(fetch, gate('scalar(fps{model="face"}) * 2'), clock);
    expect(scalar).toMatchObject({ ok: true, series: [{ labels: {}, value: 40 }] });

    fps = 4;
    const low = await until(async () => {
      const s = await queryMetric(fetch, gate('fps{model="face"}'), clock);
      return s.ok && s.series[0]?.value === 4 ? s : undefined;
    }, 'the lowered value');
    const v = gateVerdict({ min: 15, forMs: 2000, everyMs: 1000 }, [first, low], first.at, low.at);
    expect(v.verdict).toBe('fail');
    expect(v.reason).toMatch(new RegExp(`^fps\\{instance="${target.replace(/\./g, '\\.')}",job="detector",model="face"\\} = 4 < min 15`));
  });
});
