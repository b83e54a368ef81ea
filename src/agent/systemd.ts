/**
 * Running the agent under systemd: a long-running service (the default), or
 * for sites that only pull on a schedule, a oneshot service plus a timer
 * whose calendar is the cron expression translated to systemd's syntax.
 */
import cron from 'node-cron';
import { cronFloorProblem } from '../util/cron-floor.ts';
import { ConfigError } from '../errors.ts';

export interface UnitInput {
  site: string;
  /** Absolute path of agent.yaml. */
  configPath: string;
  /** Absolute paths of node and of bin/modelsync.js. */
  node: string;
  cli: string;
  /** Directories the agent writes (store, config_dir): kept writable under ProtectSystem. */
  writable: string[];
  user?: string;
  /** `Documentation=` URL (the installed docs as file://), omitted when unknown. */
  docs?: string;
}

export const SERVICE_NAME = 'modelsync-agent';

/**
 * The units set PrivateTmp=true: the service sees an empty /tmp of its own,
 * so a store, config_dir or script under /tmp (or /var/tmp) that works when
 * the agent is run by hand is missing, or lost on every restart, under
 * systemd. Each such path gets a warning, said before the units.
 */
export function privateTmpWarnings(paths: ReadonlyArray<{ what: string; path: string }>): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const { what, path } of paths) {
    if (!/^\/(var\/)?tmp(\/|$)/.test(path) || seen.has(`${what}\0${path}`)) continue;
    seen.add(`${what}\0${path}`);
    out.push(`${what} ${path} is under ${path.startsWith('/var/tmp') ? '/var/tmp' : '/tmp'}, but the unit sets PrivateTmp=true: the service sees its own empty ${path.startsWith('/var/tmp') ? '/var/tmp' : '/tmp'}, so it would not find it there${what === 'the store' ? ' (and a store there starts empty on every restart)' : ''}. Move it, or remove PrivateTmp=true from the unit`);
  }
  return out;
}

/** `modelsync-agent.service`: the daemon, restarted by systemd if it ever exits. */
export function serviceUnit(u: UnitInput): string {
  return [
    '[Unit]',
    `Description=modelsync agent for site ${u.site}`,
    ...documentation(u),
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${execLine([u.node, u.cli, 'agent', '--config', u.configPath])}`,
    'Restart=always',
    'RestartSec=5',
    // A pass in progress finishes its atomic steps; the agent exits on SIGTERM within this.
    'TimeoutStopSec=60',
    ...(u.user ? [`User=${u.user}`] : []),
    'Environment=MODELSYNC_LOG_LEVEL=info',
    ...hardening(u.writable),
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/**
 * The timer alternative: `modelsync-agent-once.service` and
 * `modelsync-agent-once.timer`. `scheduleNote` says where the schedule came
 * from (a comment in the timer: the timer is fixed when written, unlike the
 * daemon, which follows the site file).
 */
export function timerUnits(u: UnitInput, schedule: string, jitterS: number, scheduleNote?: string): { service: string; timer: string } {
  const service = [
    '[Unit]',
    `Description=modelsync one-shot reconcile for site ${u.site}`,
    ...documentation(u),
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${execLine([u.node, u.cli, 'agent', '--config', u.configPath, '--once'])}`,
    // 3 = finished with conflicts: reported, not a failure of the unit. 4 (degraded) is.
    'SuccessExitStatus=3',
    ...(u.user ? [`User=${u.user}`] : []),
    ...hardening(u.writable),
    '',
  ].join('\n');
  const timer = [
    ...(scheduleNote ? [`# ${scheduleNote.replace(/\n/g, ' ')}`] : []),
    '# Written once: if the schedule changes, run `modelsync agent --install-systemd` again (the daemon follows the site file by itself).',
    '[Unit]',
    `Description=modelsync pull schedule for site ${u.site} (${schedule.replace(/%/g, '%%')})`,
    ...documentation(u),
    '',
    '[Timer]',
    `OnCalendar=${cronToOnCalendar(schedule)}`,
    `RandomizedDelaySec=${Math.round(jitterS)}`,
    // Catch up on a run missed while the machine was off.
    'Persistent=true',
    'OnBootSec=1min',
    `Unit=${SERVICE_NAME}-once.service`,
    '',
    '[Install]',
    'WantedBy=timers.target',
    '',
  ].join('\n');
  return { service, timer };
}

function documentation(u: UnitInput): string[] {
  return u.docs ? [`Documentation=${u.docs}`] : [];
}

function hardening(writable: string[]): string[] {
  return [
    '# Sandboxing: the agent writes only its store and config_dir. Restart commands run',
    '# inside the same sandbox; relax these if a restart or health command needs more.',
    'PrivateTmp=true',
    'ProtectSystem=full',
    // "-": a directory that does not exist yet (a store before its first pass, a
    // config_dir no template has written) must not stop the unit with 226/NAMESPACE.
    ...(writable.length ? [`ReadWritePaths=${writable.map((w) => quoteArg(`-${w}`)).join(' ')}`] : []),
  ];
}

const DOW = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/**
 * A five- or six-field cron expression as a systemd OnCalendar value. Each
 * field is expanded to the values it matches (node-cron does the parsing),
 * so steps and ranges translate exactly. Cron's "day-of-month OR
 * day-of-week" rule when both are restricted has no systemd equivalent and
 * is refused.
 */
export function cronToOnCalendar(expression: string): string {
  let f: ReturnType<typeof cron.parse>;
  try {
    f = cron.parse(expression);
  } catch (err) {
    throw new ConfigError(`schedule ${JSON.stringify(expression)} is not a valid cron expression: ${(err as Error).message}`);
  }
  // A schedule recorded by an older store may predate the floor: the timer holds it too.
  const floor = cronFloorProblem(expression);
  if (floor) throw new ConfigError(`schedule ${floor}`);
  const nums = (v: Array<number | string>, what: string): number[] => {
    if (v.some((x) => typeof x !== 'number')) {
      throw new ConfigError(`schedule ${JSON.stringify(expression)}: ${what} uses a token systemd timers cannot express; run the agent service instead`);
    }
    return [...new Set(v as number[])].sort((a, b) => a - b);
  };
  const second = nums(f.second, 'seconds');
  const minute = nums(f.minute, 'minutes');
  const hour = nums(f.hour, 'hours');
  const dom = nums(f.dayOfMonth, 'day of month');
  const month = nums(f.month, 'month');
  const dow = nums(f.dayOfWeek.map((d) => (d === 7 ? 0 : d)), 'day of week');
  const full = (v: number[], lo: number, hi: number): boolean => v.length === hi - lo + 1;
  const domAll = full(dom, 1, 31);
  const dowAll = full(dow, 0, 6);
  if (!domAll && !dowAll) {
    throw new ConfigError(
      `schedule ${JSON.stringify(expression)} restricts both day of month and day of week (cron runs when either matches); systemd timers cannot express that, run the agent service instead`,
    );
  }
  const list = (v: number[], lo: number, hi: number, pad = 2): string => (full(v, lo, hi) ? '*' : v.map((x) => String(x).padStart(pad, '0')).join(','));
  const days = dowAll ? '' : `${dow.map((d) => DOW[d]).join(',')} `;
  return `${days}*-${list(month, 1, 12)}-${list(dom, 1, 31)} ${list(hour, 0, 23)}:${list(minute, 0, 59)}:${list(second, 0, 59)}`;
}

function execLine(argv: string[]): string {
  return argv.map(quoteArg).join(' ');
}

/** systemd's own quoting: double quotes when needed; `%` (specifiers) and `$` (variables) doubled. */
function quoteArg(a: string): string {
  const s = a.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /[\s"'\\;]/.test(s) ? `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : s;
}
