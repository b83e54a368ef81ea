/**
 * A service whose `models:` names a model the site does not run is outside
 * the health gate (issue 9 item 10): a real agent warns at start and on
 * every pass, and shows it on /status and in its report to a real hub.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, captureLogger, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

describe('services naming models the site does not run', () => {
  it('are warned about at start and every pass, on /status and at the hub', async () => {
    const reg = TestRegistry.init(tempDir('svc-models-reg-'), env);
    reg.addVersion('face_recognition', '1', { 'model.bin': bytes(10_000, 1) });
    reg.setCurrent('face_recognition', '1');
    reg.site('alpha', {});
    reg.commit('v1');
    const hub = await startTestHub();
    const store = join(tempDir('svc-models-'), 'store');
    const services = [{ name: 'sentinel', models: ['face_recognition', 'face_recogniton'], restart: [node, '-e', 'process.exit(0)'] }];
    const fields = { site: 'alpha', registry: reg.dir, store, hub: hub.url, services, schedule: '0 0 1 1 *' };
    const message = 'service sentinel names model face_recogniton, which this site does not run (did you mean "face_recognition"?): it is never restarted or health-checked for a switch (site models: face_recognition)';

    const log1 = captureLogger();
    const agent = await startAgent(fields, { logger: log1.logger });
    await agent.whenIdle();
    expect(agent.status().serviceProblems).toEqual([{ service: 'sentinel', model: 'face_recogniton', message }]);
    const warned = (lines: ReturnType<typeof log1.lines>, at: string): number => lines.filter((l) => l.msg === message && l.level === 40 && l.at === at).length;
    expect(warned(log1.lines(), 'pass')).toBe(1);
    await agent.request('manual', 'again');
    expect(warned(log1.lines(), 'pass')).toBe(2);
    await waitFor(async () => {
      const { sites } = (await (await fetch(`${hub.url}/api/v1/sites`)).json()) as { sites: Array<{ site: string; serviceProblems?: unknown[] }> };
      return JSON.stringify(sites.find((s) => s.site === 'alpha')?.serviceProblems) === JSON.stringify([{ service: 'sentinel', model: 'face_recogniton', message }]);
    }, 'the problem in the hub report');
    await agent.stop();

    // A restart warns before its first pass, from what the last validated pass resolved.
    const log2 = captureLogger();
    const again = await startAgent(fields, { logger: log2.logger });
    expect(warned(log2.lines(), 'start')).toBe(1);
    await again.whenIdle();
    await again.stop();
  });
});
