import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { startHub } from '../hub/index.ts';
import { EXIT, type CommandContext } from './context.ts';

export interface ServeOptions {
  data?: string;
  listen?: string;
  tokens?: string;
  publicUrl?: string;
  rolloutInterval?: string;
  notify?: string;
  objects?: string;
  s3Endpoint?: string;
  /** Commander: true for --s3-path-style, false for --no-s3-path-style, undefined for neither. */
  s3PathStyle?: boolean;
  mirror?: string;
  tokenFile?: string;
  mirrorInterval?: string;
  maxConnections?: string;
}

/**
 * `modelsync serve`: run the hub until SIGINT/SIGTERM, then stop accepting,
 * end event streams and let in-flight transfers finish before exiting.
 */
export async function serveCommand(opts: ServeOptions, ctx: CommandContext): Promise<number> {
  if (!opts.data) throw new UsageError('serve needs --data <dir>');
  const rolloutIntervalS = Number(opts.rolloutInterval ?? '10');
  if (!Number.isFinite(rolloutIntervalS) || rolloutIntervalS < 0) throw new UsageError(`--rollout-interval must be a number of seconds (0 turns the controller off), got ${JSON.stringify(opts.rolloutInterval)}`);
  if ((opts.s3Endpoint !== undefined || opts.s3PathStyle !== undefined) && !opts.objects?.startsWith('s3://')) {
    throw new UsageError('--s3-endpoint and --s3-path-style go with --objects s3://<bucket>[/<prefix>]');
  }
  if (opts.tokenFile !== undefined && opts.mirror === undefined) throw new UsageError('--token-file is the upstream token of a mirror: it needs --mirror <upstream registry URL>');
  const mirrorIntervalS = Number(opts.mirrorInterval ?? '60');
  if (!Number.isFinite(mirrorIntervalS) || mirrorIntervalS < 1) throw new UsageError(`--mirror-interval must be a number of seconds, at least 1, got ${JSON.stringify(opts.mirrorInterval)}`);
  const maxConnections = opts.maxConnections === undefined ? undefined : Number(opts.maxConnections);
  if (maxConnections !== undefined && (!Number.isInteger(maxConnections) || maxConnections < 16)) throw new UsageError(`--max-connections must be a whole number of at least 16, got ${JSON.stringify(opts.maxConnections)}`);
  const hub = await startHub({
    data: resolve(ctx.cwd, opts.data),
    listen: opts.listen,
    tokensFile: opts.tokens === undefined ? undefined : resolve(ctx.cwd, opts.tokens),
    publicUrl: opts.publicUrl,
    rolloutIntervalS,
    notifyFile: opts.notify === undefined ? undefined : resolve(ctx.cwd, opts.notify),
    logger: ctx.logger,
    objects: opts.objects,
    s3: { endpoint: opts.s3Endpoint, pathStyle: opts.s3PathStyle },
    mirror: opts.mirror === undefined ? undefined : { upstream: opts.mirror, tokenFile: opts.tokenFile === undefined ? undefined : resolve(ctx.cwd, opts.tokenFile), intervalS: mirrorIntervalS },
    ...(maxConnections !== undefined ? { limits: { maxConnections } } : {}),
  });
  // Say where the socket really is: 0.0.0.0 serves the network, which 127.0.0.1 in the URL would hide.
  const all = /^(0\.0\.0\.0|\[::\]):/.test(hub.listen);
  if (hub.mirror) ctx.out(`read-only mirror of ${hub.mirror.upstream.description}; local agents use registry: ${opts.publicUrl ?? hub.url}/${hub.mirror.upstream.repo}.git and hub: ${opts.publicUrl ?? hub.url}`);
  ctx.out(all
    ? `modelsync hub listening on ${hub.listen} (every address of this machine; locally ${hub.url}) (data: ${hub.dataDir}); dashboard at ${opts.publicUrl ?? hub.url}/`
    : `modelsync hub listening on ${hub.url} (data: ${hub.dataDir}); dashboard at ${opts.publicUrl ?? hub.url}/`);
  const signal = await new Promise<NodeJS.Signals>((done) => {
    const on = (s: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      done(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
  ctx.logger.info({ signal }, 'shutting down: finishing in-flight requests');
  // A second signal while draining means "now".
  const force = (): void => process.exit(EXIT.error);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  await hub.close();
  ctx.logger.info('hub stopped');
  return EXIT.ok;
}
