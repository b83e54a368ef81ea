/** `status --hub`: the fleet table (and rollouts) from a hub, once or `--watch`ed. */
import { errorMessage } from '../errors.ts';
import { fetchFleet, fetchRollouts, fleetExitCode, renderFleet, renderRollouts } from '../agent/fleet.ts';
import { redactUrl } from '../util/redact.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { readToken } from './reconcile.ts';

export async function hubStatusCommand(opts: { hub?: string; tokenFile?: string; json?: boolean; watch?: boolean }, ctx: CommandContext, deps: { intervalMs?: number; signal?: AbortSignal } = {}): Promise<number> {
  const token = readToken(opts.tokenFile, ctx);
  if (!opts.watch) {
    const sites = await fetchFleet(opts.hub!, token);
    const rollouts = await fetchRollouts(opts.hub!, token);
    if (opts.json) printJson(ctx, { hub: redactUrl(opts.hub!), sites, ...(rollouts ? { rollouts } : {}) });
    else ctx.out(renderFleet(sites) + (rollouts?.length ? `\n\n${renderRollouts(rollouts)}` : ''));
    return fleetExitCode(sites);
  }
  // --watch: redraw on a terminal, print on change otherwise; Ctrl-C ends it with the last state's code.
  const stop = deps.signal ?? signalOnInterrupt();
  let prev = '';
  let code: number = EXIT.ok;
  while (!stop.aborted) {
    let text: string;
    try {
      const sites = await fetchFleet(opts.hub!, token);
      code = fleetExitCode(sites);
      const rollouts = await fetchRollouts(opts.hub!, token);
      text = opts.json ? JSON.stringify({ hub: redactUrl(opts.hub!), sites, ...(rollouts ? { rollouts } : {}) }) : renderFleet(sites) + (rollouts?.length ? `\n\n${renderRollouts(rollouts)}` : '');
    } catch (err) {
      text = `cannot read the fleet: ${errorMessage(err)} (retrying)`;
    }
    // Ages tick every second; compare without them so a log gets a block only when something changed.
    const key = text.replace(/\d+(\.\d+)? ?(ms|s|min|h|d) ago/g, '');
    if (ctx.tty) ctx.out(`\x1b[H\x1b[2J${new Date().toISOString()}  ${redactUrl(opts.hub!)}  (Ctrl-C to stop)\n${text}`);
    else if (key !== prev) ctx.out(`--- ${new Date().toISOString()}\n${text}`);
    prev = key;
    await new Promise<void>((r) => {
      const t = setTimeout(r, deps.intervalMs ?? 2000);
      stop.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
    });
  }
  return code;
}

function signalOnInterrupt(): AbortSignal {
  const c = new AbortController();
  process.once('SIGINT', () => c.abort());
  process.once('SIGTERM', () => c.abort());
  return c.signal;
}

