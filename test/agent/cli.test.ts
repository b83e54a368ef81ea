/**
 * `modelsync agent` as an operator runs it: the daemon in its own process,
 * answering on `listen` and stopping cleanly on SIGTERM; the systemd units.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
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
    expect(printed.stdout).toContain('ReadWritePaths=-/var/lib/modelsync -/etc/modelsync/rendered');
    const timer = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd', 'timer'], { cwd: dir, env });
    expect(timer.stdout).toContain('OnCalendar=*-*-* *:00,15,30,45:00');
    const units = join(dir, 'units');
    // Installing creates the directories the unit names, which a sandboxed agent could not create below /etc.
    const store = join(dir, 'var/store');
    const rendered = join(dir, 'etc/rendered');
    writeFileSync(join(dir, 'agent.yaml'), `site: beta\nregistry: https://hub.example/registry.git\nstore: ${store}\nconfig_dir: ${rendered}\nschedule: "*/15 * * * *"\n`);
    const installed = await cliAsync(['agent', '--config', 'agent.yaml', '--install-systemd', units], { cwd: dir, env });
    expect(installed.status).toBe(0);
    expect(statSync(store).isDirectory() && statSync(rendered).isDirectory()).toBe(true);
    expect(installed.stdout).toMatch(/systemctl daemon-reload && systemctl enable --now modelsync-agent.service/);
    expect(readFileSync(join(units, 'modelsync-agent.service'), 'utf8')).toContain('Restart=always');
    expect(readFileSync(join(units, 'modelsync-agent-once.timer'), 'utf8')).toContain('Persistent=true');
    const bad = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd', 'cron'], { cwd: dir, env });
    expect(bad.status).toBe(2);
    // Documentation= points at the docs of this installation, not at a made-up web page.
    expect(printed.stdout).toContain(`Documentation=file://${join(ROOT, 'docs/agent.md')}\n`);
    expect(printed.stdout + timer.stdout).not.toMatch(/github\.com/);
  });

  it("the timer runs on the schedule the daemon would use: agent.yaml's, else the site file's, else the default, and says which", async () => {
    const reg = registry(); // sites/alpha.yaml: schedule */5 * * * *
    const dir = tempDir('agent-cli-timer-');
    writeFileSync(join(dir, 'agent.yaml'), `site: alpha\nregistry: ${reg.dir}\nstore: store\n`);
    const fromSite = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd', 'timer'], { cwd: dir, env });
    expect(fromSite.status).toBe(0);
    expect(fromSite.stdout).toContain('OnCalendar=*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00\n');
    expect(fromSite.stdout).toContain(`# schedule "*/5 * * * *" from sites/alpha.yaml at registry commit ${reg.head().slice(0, 12)} (agent.yaml sets none; --schedule overrides)`);

    const flag = await cliAsync(['agent', '--config', 'agent.yaml', '--print-systemd', 'timer', '--schedule', '0 3 * * *'], { cwd: dir, env });
    expect(flag.stdout).toContain('OnCalendar=*-*-* 03:00:00\n');
    expect(flag.stdout).toContain('# schedule "0 3 * * *" from --schedule');

    // The registry cannot be reached and no pass ever ran: the default, and a note that says why.
    writeFileSync(join(dir, 'offline.yaml'), 'site: alpha\nregistry: http://127.0.0.1:1/registry.git\nstore: store\n');
    const offline = await cliAsync(['agent', '--config', 'offline.yaml', '--print-systemd', 'timer'], { cwd: dir, env });
    expect(offline.status).toBe(0);
    expect(offline.stdout).toContain('OnCalendar=*-*-* *:00,15,30,45:00\n');
    expect(offline.stdout).toMatch(/# schedule "\*\/15 \* \* \* \*", the default: the registry could not be read to find sites\/alpha\.yaml's schedule \(.*ECONNREFUSED.*\); give --schedule to be sure/);
  });

  it('refuses a bad agent.yaml with positioned errors (exit 1)', async () => {
    const dir = tempDir('agent-cli-bad-');
    writeFileSync(join(dir, 'agent.yaml'), 'site: beta\nregistry: /x\nstore: s\nlisten: nowhere\n');
    const r = await cliAsync(['agent', '--config', 'agent.yaml', '--once'], { cwd: dir, env });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/agent\.yaml:4:9: listen: "nowhere" is not host:port/);
  });

  it('a listen address already in use is a one-line error naming it (exit 1), not a crash', async () => {
    const reg = registry();
    const dir = tempDir('agent-cli-port-');
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as AddressInfo).port;
    try {
      writeFileSync(join(dir, 'agent.yaml'), `site: alpha\nregistry: ${reg.dir}\nstore: store\nlisten: 127.0.0.1:${port}\nverify_interval_s: 0\n`);
      const r = await cliAsync(['agent', '--config', 'agent.yaml'], { cwd: dir, env });
      expect(r.status).toBe(1);
      expect(r.stderr.trim()).toBe(
        `modelsync: listen: cannot listen on 127.0.0.1:${port}: the address is already in use (another modelsync, or another program, listens there); choose another port (EADDRINUSE) [ConfigError]`,
      );
      expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
    } finally {
      taken.close();
    }
  });

  it('exit codes: no configuration or a missing --config file is usage (2); a bad file is an error (1), with "did you mean"', async () => {
    const dir = tempDir('agent-cli-usage-');
    const bare = await cliAsync(['agent'], { cwd: dir, env });
    expect(bare.status).toBe(2);
    expect(bare.stderr).toMatch(/^modelsync: agent needs a configuration: give --config <agent.yaml>/);
    const missing = await cliAsync(['agent', '--config', 'nope.yaml'], { cwd: dir, env });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/--config nope\.yaml: no such file/);
    writeFileSync(join(dir, 'agent.yaml'), 'site: beta\nregistry: /x\nstore: s\njiter_s: 5\n');
    const typo = await cliAsync(['agent', '--config', 'agent.yaml', '--once'], { cwd: dir, env });
    expect(typo.status).toBe(1);
    expect(typo.stderr).toMatch(/agent\.yaml:4:1: jiter_s: unknown key "jiter_s" \(did you mean "jitter_s"\?\)/);
  });
});
