/**
 * A first install (nothing active before) whose health check fails: there is
 * nothing to roll back to, so it stays active and the site is Degraded. The
 * log and the summary say so, instead of claiming a rollback or "0 changed".
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current } from './helpers/agent.ts';

const env = isolatedGitEnv();

describe('a first install that fails its health check', () => {
  it('stays active; the log and the summary say there was nothing to roll back to', async () => {
    const reg = TestRegistry.init(tempDir('agent-deg-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(10_000, 1) });
    reg.setCurrent('face', '1');
    reg.site('alpha', {});
    reg.commit('v1');
    const dir = tempDir('agent-deg-');
    const node = JSON.stringify(process.execPath);
    writeFileSync(join(dir, 'agent.yaml'), [
      'site: alpha', `registry: ${reg.dir}`, 'store: store', 'verify_interval_s: 0',
      'services:',
      '  - name: sentinel',
      '    models: [face]',
      `    restart: [${node}, "-e", "0"]`,
      `    health: {command: [${node}, "-e", "process.exit(1)"], timeout_s: 1, interval_s: 0.2}`,
      '',
    ].join('\n'));
    const r = await cliAsync(['agent', '--once', '--config', 'agent.yaml', '--log-level', 'info'], { cwd: dir, env });
    expect(r.status).toBe(4);
    expect(current(join(dir, 'store'), 'face')).toBe('1');
    expect(r.stdout).toMatch(/^status: degraded \(1 installed, unhealthy with no previous version to roll back to: it stays active, .* 1 degraded, /m);
    expect(r.stdout).not.toMatch(/0 changed/);
    expect(r.stderr).toContain('site DEGRADED: face 1 failed its health check with no previous version to roll back to; it stays active');
    expect(r.stderr).not.toMatch(/rolled back"/);
  });
});
