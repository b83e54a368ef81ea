/**
 * Whoever can merge to the registry decides versions, never what a site
 * executes: a template aimed at a script a service command runs is refused on
 * the site, end to end through a real `agent --once`, and the registry's
 * script never runs.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { agentConfig, bytes, current } from '../agent/helpers/agent.ts';
import { guardedPaths } from '../../src/agent/guarded-paths.ts';
import { renderTemplates } from '../../src/agent/templates.ts';
import { templateContext } from '../../src/templates/index.ts';

const env = isolatedGitEnv();
const ORIGINAL = '#!/bin/sh\n# the site\'s own health check\nexit 0\n';

function evilRegistry(marker: string, dests: string[]): TestRegistry {
  const reg = TestRegistry.init(tempDir('sec-tpl-reg-'), env);
  reg.addVersion('tiny', '1', { 'w.bin': bytes(2000, 7) });
  reg.setCurrent('tiny', '1');
  reg.write('templates/evil.j2', `#!/bin/sh\ntouch ${marker}\nexit 0\n`);
  reg.write('templates/ok.j2', 'model: {{ models.tiny.version }}\n');
  reg.site('alpha', { templates: [...dests.map((dest) => ({ src: 'templates/evil.j2', dest, models: ['tiny'] })), { src: 'templates/ok.j2', dest: 'tiny.yaml', models: ['tiny'] }] });
  reg.commit('a template aimed at the health check');
  return reg;
}

describe('a registry template never replaces what a service executes', () => {
  it('agent --once refuses a dest that is the health command script, and the script the registry wrote never runs', async () => {
    const dir = tempDir('sec-tpl-');
    const cfg = join(dir, 'cfg');
    const marker = join(dir, 'PWNED');
    mkdirSync(join(cfg, 'bin'), { recursive: true });
    writeFileSync(join(cfg, 'smoke.sh'), ORIGINAL, { mode: 0o755 });
    writeFileSync(join(cfg, 'bin', 'restart.sh'), ORIGINAL, { mode: 0o755 });
    // smoke.sh: named by the health argv; bin/x.sh: under a directory a restart argv names.
    const reg = evilRegistry(marker, ['smoke.sh', 'bin/restart.sh', 'bin/new.sh']);
    const services = [{ name: 'svc', models: ['tiny'], restart: ['/bin/true', join(cfg, 'bin')], health: { command: ['/bin/sh', join(cfg, 'smoke.sh')] } }];
    writeFileSync(join(dir, 'agent.yaml'), `${JSON.stringify({ site: 'alpha', registry: reg.dir, store: join(dir, 'store'), config_dir: cfg, verify_interval_s: 0, services })}\n`);
    const r = await cliAsync(['agent', '--config', 'agent.yaml', '--once'], { cwd: dir, env });
    const out = r.stdout + r.stderr;
    expect(existsSync(marker)).toBe(false);
    expect(readFileSync(join(cfg, 'smoke.sh'), 'utf8')).toBe(ORIGINAL);
    expect(readFileSync(join(cfg, 'bin', 'restart.sh'), 'utf8')).toBe(ORIGINAL);
    expect(existsSync(join(cfg, 'bin', 'new.sh'))).toBe(false);
    expect(out).toMatch(/smoke\.sh.*a service command runs/);
    expect(readFileSync(join(cfg, 'tiny.yaml'), 'utf8')).toBe('model: 1\n');
    expect(statSync(join(cfg, 'tiny.yaml')).mode & 0o777).toBe(0o644);
    expect(out).toMatch(/bin\/new\.sh" would write inside .*cfg\/bin, which a service command runs \(services\[0\]\.restart/);
    // The model's service counts the refusal as a failed check: with nothing to roll back to, tiny 1
    // stays active and the site says DEGRADED (exit 4), naming the refused template.
    expect(r.status).toBe(4);
    expect(r.stdout).toMatch(/DEGRADED/);
    expect(current(join(dir, 'store'), 'tiny')).toBe('1');
    expect(readdirSync(cfg).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('guards a script reached through a symlink in config_dir, words inside sh -c, and programs found on PATH', async () => {
    const dir = tempDir('sec-tpl-unit-');
    const cfg = join(dir, 'cfg');
    const scripts = join(dir, 'scripts');
    mkdirSync(cfg, { recursive: true });
    mkdirSync(scripts, { recursive: true });
    writeFileSync(join(scripts, 'run.sh'), ORIGINAL, { mode: 0o755 });
    symlinkSync(join(scripts, 'run.sh'), join(cfg, 'run.sh'));
    writeFileSync(join(cfg, 'check.sh'), ORIGINAL, { mode: 0o755 });
    const config = agentConfig({
      site: 'alpha', registry: dir, store: join(dir, 'store'), config_dir: cfg,
      services: [
        { name: 'a', models: ['m'], restart: [join(cfg, 'run.sh')] },
        { name: 'b', models: ['m'], health: { command: ['/bin/sh', '-c', `cd ${cfg} && ./check.sh --quick`] } },
        { name: 'c', models: ['m'], restart: ['mysvc-restart', 'now'] },
      ],
    });
    const context = templateContext({ site: { name: 'alpha' }, models: [{ name: 'm', version: '1', dir: '/s/models/m/1', files: [] }] });
    const outcomes = await renderTemplates({
      specs: ['run.sh', 'check.sh', 'mysvc-restart', 'fine.yaml'].map((dest) => ({ src: 'evil.j2', dest, models: ['m'] })),
      readSource: async () => '#!/bin/sh\necho evil\n',
      context,
      configDir: cfg,
      protectedPaths: guardedPaths(config, { cwd: dir, pathEnv: `/usr/bin:${cfg}` }),
    });
    expect(outcomes.map((o) => o.status)).toEqual(['error', 'error', 'error', 'written']);
    expect(outcomes[0]!.message).toMatch(/services\[0\]\.restart of "a"/);
    expect(outcomes[1]!.message).toMatch(/services\[1\]\.health\.command of "b"/);
    expect(outcomes[2]!.message).toMatch(/services\[2\]\.restart of "c"/);
    expect(readFileSync(join(scripts, 'run.sh'), 'utf8')).toBe(ORIGINAL);
    expect(lstatSync(join(cfg, 'run.sh')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(cfg, 'check.sh'), 'utf8')).toBe(ORIGINAL);
    expect(existsSync(join(cfg, 'mysvc-restart'))).toBe(false);
    expect(statSync(join(cfg, 'fine.yaml')).mode & 0o777).toBe(0o644);
  });

});
