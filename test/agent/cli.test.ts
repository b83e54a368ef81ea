/**
 * `modelsync agent` as an operator runs it: the daemon in its own process,
 * answering on `listen` and stopping cleanly on SIGTERM; the systemd units.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();

function registry(): TestRegistry {
  const reg = TestRegistry.init(tempDir('agent-cli-reg-'), env);
  reg.addVersion('face', '1', { 'model.bin': bytes(10_000, 1) });
  reg.setCurrent('face', '1');
  reg.site('alpha', { schedule: '*/5 * * * *' });
  reg.commit('v1');
  return reg;
}

describe('modelsync agent (CLI)', () => {
  it('runs as a daemon, serves /status, and exits 0 on SIGTERM', async () => {
    const reg = registry();
    const dir = tempDir('agent-cli-');
    const store = join(dir, 'store');
    writeFileSync(join(dir, 'agent.yaml'), `site: alpha\nregistry: ${reg.dir}\nstore: store\nlisten: 127.0.0.1:0\nverify_interval_s: 0\n`);
    const child = spawn(process.execPath, [CLI, 'agent', '--config', 'agent.yaml', '--log-level', 'info'], { cwd: dir, env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      await waitFor(() => /"url":"(http:[^"]+)"/.test(stderr), 'the agent to listen', 30_000);
      const url = /"url":"(http:[^"]+)"/.exec(stderr)![1]!;
      await waitFor(async () => ((await (await fetch(`${url}/status`)).json()) as { health: string }).health === 'Ready', 'the first pass', 30_000);
      expect(current(store, 'face')).toBe('1');
      const status = (await (await fetch(`${url}/status`)).json()) as { schedule: string; lastPass: { triggers: string[] } };
      // The site file's schedule applies after the first pass.
      expect(status.schedule).toBe('*/5 * * * *');
      expect(status.lastPass.triggers).toEqual(['start']);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/stopping the agent/);
  });

  it('prints and installs systemd units', async () => {
    const dir = tempDir('agent-cli-systemd-');
    writeFileSync(join(dir, 'agent.yaml'), 'site: beta\nregistry: https://hub.example/registry.git\nstore: /var/lib/modelsync\nconfig_dir: /etc/modelsync/rendered\nschedule: "*/15 * * * *"\n');
    const printed = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd'], { cwd: dir, env });
    expect(printed.status).toBe(0);
    expect(printed.stdout).toContain(`agent --config ${join(dir, 'agent.yaml')}\n`);
    expect(printed.stdout).toContain('ReadWritePaths=/var/lib/modelsync /etc/modelsync/rendered');
    const timer = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd', 'timer'], { cwd: dir, env });
    expect(timer.stdout).toContain('OnCalendar=*-*-* *:00,15,30,45:00');
    const units = join(dir, 'units');
    const installed = await cliAsync(['agent', '--config', 'agent.yaml', '--install-systemd', units], { cwd: dir, env });
    expect(installed.status).toBe(0);
    expect(installed.stdout).toMatch(/systemctl daemon-reload && systemctl enable --now modelsync-agent.service/);
    expect(readFileSync(join(units, 'modelsync-agent.service'), 'utf8')).toContain('Restart=always');
    expect(readFileSync(join(units, 'modelsync-agent-once.timer'), 'utf8')).toContain('Persistent=true');
    const bad = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd', 'cron'], { cwd: dir, env });
    expect(bad.status).toBe(2);
  });

  it('refuses a bad agent.yaml with positioned errors (exit 1)', async () => {
    const dir = tempDir('agent-cli-bad-');
    writeFileSync(join(dir, 'agent.yaml'), 'site: beta\nregistry: /x\nstore: s\nlisten: nowhere\n');
    const r = await cliAsync(['agent', '--config', 'agent.yaml', '--once'], { cwd: dir, env });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/agent\.yaml:4:9: listen: "nowhere" is not host:port/);
  });
});
