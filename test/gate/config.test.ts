/** agent.yaml's `health: {metric: …}`: defaults, and bad gates named by file, line and field. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/env.ts';
import { loadAgentConfig } from '../../src/agent/config.ts';

function config(health: string): string {
  const d = tempDir('gate-cfg-');
  writeFileSync(join(d, 'agent.yaml'), [
    'site: beta', 'registry: /srv/registry', 'store: ./store', 'services:',
    '  - name: detector', '    models: [face]', '    restart: [systemctl, restart, detector]', `    health: ${health}`, '',
  ].join('\n'));
  return join(d, 'agent.yaml');
}

async function problems(health: string): Promise<string> {
  try {
    await loadAgentConfig({ file: config(health), cwd: '/' });
  } catch (err) {
    return (err as Error).message;
  }
  return 'no error';
}

describe('agent.yaml metric gates', () => {
  it('reads a gate with its default period', async () => {
    const cfg = await loadAgentConfig({ file: config(`{metric: {url: "http://127.0.0.1:9090/api/v1/query", query: 'avg_over_time(fps{model="face"}[5m])', min: 15, for: 10m}}`), cwd: '/' });
    expect(cfg.services[0]!.health!.metric).toEqual({ url: 'http://127.0.0.1:9090/api/v1/query', query: 'avg_over_time(fps{model="face"}[5m])', min: 15, for: '10m', every: '30s' });
  });

  it('names what is wrong, where', async () => {
    const url = 'url: "http://127.0.0.1:9090/api/v1/query", query: up';
    expect(await problems(`{metric: {${url}, for: 10m}}`)).toMatch(/agent\.yaml:8:\d+: services\[0\]\.health\.metric: give min, max or both/);
    expect(await problems(`{metric: {${url}, min: 20, max: 10, for: 10m}}`)).toMatch(/min must not be above max/);
    expect(await problems(`{metric: {${url}, min: 1, for: 1m, every: 5m}}`)).toMatch(/every must not be longer than for/);
    expect(await problems(`{metric: {${url}, min: 1, for: ten}}`)).toMatch(/services\[0\]\.health\.metric\.for: must be a duration/);
    expect(await problems(`{metric: {url: "ftp://x/q", query: up, min: 1, for: 1m}}`)).toMatch(/metric\.url: must be an http\(s\) URL/);
    expect(await problems(`{metric: {${url}, min: 1, for: 1m, evry: 5s}}`)).toMatch(/unknown key "evry" \(did you mean "every"\?\)/);
    expect(await problems(`{http: "http://127.0.0.1/ready", metric: {${url}, min: 1, for: 1m}}`)).toMatch(/give exactly one of command, http, infer or metric/);
  });
});
