import { describe, expect, it } from 'vitest';
import { cronToOnCalendar, serviceUnit, timerUnits } from './systemd.ts';

const input = { site: 'beta', configPath: '/etc/modelsync/agent.yaml', node: '/usr/bin/node', cli: '/opt/modelsync/bin/modelsync.js', writable: ['/var/lib/modelsync', '/etc/modelsync/rendered'] };

describe('systemd units', () => {
  it('runs the agent with its config and restarts it', () => {
    const unit = serviceUnit(input);
    expect(unit).toContain('ExecStart=/usr/bin/node /opt/modelsync/bin/modelsync.js agent --config /etc/modelsync/agent.yaml\n');
    expect(unit).toContain('Restart=always');
    expect(unit).toContain('ReadWritePaths=/var/lib/modelsync /etc/modelsync/rendered');
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
});
