/**
 * `modelsync agent`: the site daemon, one pass with `--once`, or the systemd
 * units that run it (`--print-systemd`, `--install-systemd`).
 */
import { existsSync, promises as fsp, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLI_PATH, PROJECT_ROOT } from '../paths.ts';
import { Agent } from '../agent/daemon.ts';
import { loadAgentConfig, readToken, type AgentConfig } from '../agent/config.ts';
import { effectiveSchedule } from '../agent/site-schedule.ts';
import { SERVICE_NAME, privateTmpWarnings, serviceUnit, timerUnits, type UnitInput } from '../agent/systemd.ts';
import { UsageError } from '../errors.ts';
import { createLogger, logFormatFor } from '../log.ts';
import { writeFileAtomic } from '../util/fsutil.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { renderResult } from './reconcile.ts';

/** `agent --once`: the pass ran (in sync, changed or with conflicts), but the hub did not take its report. */
export const EXIT_REPORT_NOT_DELIVERED = 5;

export interface AgentCommandOptions extends Record<string, unknown> {
  config?: string;
  once?: boolean;
  json?: boolean;
  printSystemd?: boolean | string;
  installSystemd?: boolean | string;
  systemdUser?: string;
}

export async function agentCommand(opts: AgentCommandOptions, ctx: CommandContext): Promise<number> {
  const cfg = await loadAgentConfig({ file: opts.config, flags: opts, env: ctx.env, cwd: ctx.cwd });
  if (opts.printSystemd !== undefined || opts.installSystemd !== undefined) return systemd(cfg, opts, ctx);

  // JSON lines under systemd and in pipes; readable lines when someone runs the agent in a terminal.
  const format = logFormatFor({ json: opts.json, stderrIsTTY: Boolean(process.stderr.isTTY), env: ctx.env });
  // `--once` at a terminal prints the pass's human summary: like `reconcile`, its log lines add only warnings and errors.
  const level = cfg.log_level ?? (format === 'pretty' && opts.once ? 'warn' : undefined);
  const logger = level || format === 'pretty' ? createLogger({ level, format }) : ctx.logger;
  const agent = await Agent.create(cfg, { logger, env: ctx.env });

  if (opts.once) {
    const { result } = await agent.once();
    const report = agent.lastReport;
    const undelivered = cfg.hub && report && !report.ok ? report.error ?? 'not delivered' : undefined;
    if (opts.json) printJson(ctx, { ...result, agent: agent.status(), ...(cfg.hub ? { report: report ?? null } : {}) });
    else {
      ctx.out(renderResult(result, { services: cfg.services }));
      if (undelivered) ctx.out(`report NOT delivered to the hub: ${undelivered}; the hub does not show this pass (exit ${EXIT_REPORT_NOT_DELIVERED})`);
    }
    // A failed or degraded pass says more than the report; otherwise an undelivered report is the news.
    if (undelivered && (result.exitCode === EXIT.ok || result.exitCode === EXIT.conflicts)) return EXIT_REPORT_NOT_DELIVERED;
    return result.exitCode;
  }

  await agent.start();
  await new Promise<void>((done) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      logger.info({ signal }, 'stopping the agent');
      agent.stop().then(done, (err: unknown) => {
        logger.error({ err: String(err) }, 'error while stopping');
        done();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return EXIT.ok;
}

async function systemd(cfg: AgentConfig, opts: AgentCommandOptions, ctx: CommandContext): Promise<number> {
  const configFile = opts.config ?? ctx.env.MODELSYNC_CONFIG;
  if (!configFile) throw new UsageError('the systemd units run `modelsync agent --config <file>`: give --config');
  const input: UnitInput = {
    site: cfg.site,
    configPath: resolve(ctx.cwd, configFile),
    node: process.execPath,
    cli: realpathSync(CLI_PATH),
    writable: [cfg.store, ...(cfg.config_dir ? [cfg.config_dir] : [])],
    user: opts.systemdUser,
    docs: installedDocs(),
  };
  const kind = typeof opts.printSystemd === 'string' ? opts.printSystemd : typeof opts.installSystemd === 'string' || opts.installSystemd ? 'both' : 'service';
  if (!['service', 'timer', 'both'].includes(kind)) throw new UsageError(`--print-systemd takes "service" or "timer", not ${JSON.stringify(kind)}`);
  const files: Array<[string, string]> = [];
  if (kind === 'service' || kind === 'both') files.push([`${SERVICE_NAME}.service`, serviceUnit(input)]);
  let schedule: string | undefined;
  if (kind === 'timer' || kind === 'both') {
    // The daemon follows agent.yaml's schedule, else the site file's: the timer must run on the same one.
    const choice = await effectiveSchedule(cfg, { token: await readToken(cfg, ctx.env).catch(() => undefined) });
    schedule = choice.schedule;
    const t = timerUnits(input, schedule, cfg.jitter_s, choice.note);
    files.push([`${SERVICE_NAME}-once.service`, t.service], [`${SERVICE_NAME}-once.timer`, t.timer]);
  }
  const warnings = privateTmpWarnings([
    { what: 'the store', path: resolve(ctx.cwd, cfg.store) },
    ...(cfg.config_dir ? [{ what: 'config_dir', path: resolve(ctx.cwd, cfg.config_dir) }] : []),
    { what: 'agent.yaml', path: input.configPath },
    ...(cfg.token_file ? [{ what: 'token_file', path: resolve(ctx.cwd, cfg.token_file) }] : []),
    ...cfg.services.flatMap((s, i) => [...(s.restart ?? []), ...(s.health?.command ?? [])]
      .filter((a) => a.startsWith('/'))
      .map((path) => ({ what: `a command of services[${i}] (${s.name})`, path }))),
  ]);
  // On stderr, so the printed units stay exactly the units; and as comments in them, for whoever reads the file.
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  const warned = warnings.length ? `${warnings.map((w) => `# WARNING: ${w}`).join('\n')}\n` : '';
  if (warned) for (const f of files) f[1] = warned + f[1];
  if (opts.installSystemd === undefined) {
    ctx.out(files.map(([name, text]) => `# ${name}\n${text}`).join('\n'));
    return EXIT.ok;
  }
  const dir = resolve(ctx.cwd, typeof opts.installSystemd === 'string' ? opts.installSystemd : '/etc/systemd/system');
  for (const [name, text] of files) await writeFileAtomic(join(dir, name), text);
  // Created now, by whoever installs (root, usually): under ProtectSystem=full the agent
  // could not create a config_dir below /etc itself.
  for (const w of input.writable) await fsp.mkdir(w, { recursive: true });
  ctx.out([
    `wrote ${files.map(([n]) => join(dir, n)).join(', ')}; created ${input.writable.join(' and ')} if missing${input.user ? ` (make them writable by ${input.user}: chown -R ${input.user} ${input.writable.join(' ')})` : ''}`,
    'enable ONE of:',
    `  systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}.service         # the daemon (events, webhook, self-heal)`,
    `  systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}-once.timer      # pull on the schedule only (${schedule})`,
  ].join('\n'));
  return EXIT.ok;
}

/** The agent docs of this installation, for the units' Documentation= (none if they were not shipped). */
function installedDocs(): string | undefined {
  const path = join(PROJECT_ROOT, 'docs', 'agent.md');
  return existsSync(path) ? pathToFileURL(path).href : undefined;
}
