/**
 * `modelsync render` writes, byte for byte, what a real agent renders into
 * its config_dir for the same site, store path and commit: the example
 * registry's five sentinel tasks (loops, filters, conditionals, labels) for
 * every site that declares templates.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startAgent } from '../agent/helpers/agent.ts';

function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.startsWith('.modelsync')) out[relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

describe('render and the agent', () => {
  it('render --store --out produces exactly the agent\'s rendered files', async () => {
    const env = isolatedGitEnv();
    const repo = join(tempDir('render-agent-'), 'reg');
    expect(cli(['init', repo], { cwd: tempDir(), env }).status).toBe(0);
    for (const site of ['alpha', 'beta', 'gamma']) {
      const dir = tempDir(`render-agent-${site}-`);
      const store = join(dir, 'store');
      const configDir = join(dir, 'rendered');
      const agent = await startAgent({ site, registry: repo, store, config_dir: configDir });
      await agent.whenIdle();
      await agent.stop();
      const byAgent = files(configDir);
      expect(Object.keys(byAgent).length).toBeGreaterThan(0);
      const out = join(dir, 'preview');
      const r = cli(['render', '--site', site, '--repo', repo, '--rev', 'main', '--store', store, '--out', out], { cwd: dir, env });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(files(out)).toEqual(byAgent);
      for (const f of Object.keys(byAgent)) expect(statSync(join(out, f)).mode & 0o777).toBe(0o644);
    }
  });
});
