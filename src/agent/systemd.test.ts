import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cronToOnCalendar, serviceUnit, timerUnits } from './systemd.ts';

const input = { site: 'beta', configPath: '/etc/modelsync/agent.yaml', node: '/usr/bin/node', cli: '/opt/modelsync/bin/modelsync.js', writable: ['/var/lib/modelsync', '/etc/modelsync/rendered'] };

describe('systemd units', () => {
  it('runs the agent with its config and restarts it', () => {
    const unit = serviceUnit(input);
    expect(unit).toContain('ExecStart=/usr/bin/node /opt/modelsync/bin/modelsync.js agent --config /etc/modelsync/agent.yaml\n');
    expect(unit).toContain('Restart=always');
    expect(unit).toContain('ReadWritePaths=-/var/lib/modelsync -/etc/modelsync/rendered');
    expect(unit).toContain('WantedBy=multi-user.target');
  });

  it('quotes paths with spaces and escapes specifiers', () => {
    const unit = serviceUnit({ ...input, configPath: '/etc/model sync/100%.yaml' });
    expect(unit).toContain('--config "/etc/model sync/100%%.yaml"');
  });

  it('offers a oneshot + timer alternative on the cron schedule', () => {
    const { service, timer } = timerUnits(input, '*/15 * * * *', 30);
    expect(service).toContain('Type=oneshot');
    expect(service).toContain('agent --config /etc/modelsync/agent.yaml --once');
    expect(service).toContain('SuccessExitStatus=3');
    expect(timer).toContain('OnCalendar=*-*-* *:00,15,30,45:00');
    expect(timer).toContain('RandomizedDelaySec=30');
    expect(timer).toContain('Unit=modelsync-agent-once.service');
  });
});

describe('cronToOnCalendar', () => {
  it('translates fields exactly', () => {
    expect(cronToOnCalendar('0 3 * * 1-5')).toBe('Mon,Tue,Wed,Thu,Fri *-*-* 03:00:00');
    expect(cronToOnCalendar('30 */6 1 * *')).toBe('*-*-01 00,06,12,18:30:00');
    expect(cronToOnCalendar('* * * * *')).toBe('*-*-* *:*:00');
  });

  it('refuses what systemd cannot express', () => {
    expect(() => cronToOnCalendar('0 0 1 * 1')).toThrow(/either matches/);
    expect(() => cronToOnCalendar('0 0 L * *')).toThrow(/cannot express/);
  });

  it('refuses a schedule firing more than once a minute, as every other reader of a schedule does', () => {
    expect(() => cronToOnCalendar('*/5 * * * * *')).toThrow(/fires 12 times a minute.*at most once a minute/);
    expect(cronToOnCalendar('30 */15 * * * *')).toBe('*-*-* *:00,15,30,45:30');
  });
});

// systemd's own parser is the judge of the unit text and of the cron translation,
// where it is installed (Debian ships systemd-analyze with the systemd package).
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;

describe.runIf(analyze)('systemd-analyze agrees', () => {
  it('verifies the service, oneshot and timer units without a warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ms-units-'));
    try {
      const u = { ...input, node: process.execPath, cli: '/bin/true' };
      const { service, timer } = timerUnits(u, '30 */6 * * 1-5', 30);
      writeFileSync(join(dir, 'modelsync-agent.service'), serviceUnit(u));
      writeFileSync(join(dir, 'modelsync-agent-once.service'), service);
      writeFileSync(join(dir, 'modelsync-agent-once.timer'), timer);
      const r = spawnSync('systemd-analyze', ['verify', ...['modelsync-agent.service', 'modelsync-agent-once.service', 'modelsync-agent-once.timer'].map((f) => join(dir, f))], { encoding: 'utf8' });
      const ours = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(dir));
      expect(ours).toEqual([]);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads each OnCalendar we write as the times cron would fire', () => {
    const cases: Array<[string, string]> = [
      ['*/15 * * * *', '2026-11-22 10:15:00'],
      ['0 3 * * 1-5', '2026-11-23 03:00:00'],
      ['30 */6 1 * *', '2026-12-01 00:30:00'],
    ];
    for (const [cron, next] of cases) {
      const r = spawnSync('systemd-analyze', ['calendar', '--base-time=2026-11-22 10:07:00 UTC', cronToOnCalendar(cron)], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`Next elapse: ${new Date(`${next}Z`).toUTCString().slice(0, 3)} ${next} UTC`);
    }
  });
});
