import { ConfigError } from '../errors.ts';

/** A listen failure as one line naming the address: an operator's mistake, not a crash. */
export function listenError(host: string, port: number, err: NodeJS.ErrnoException): ConfigError {
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is already in use (another modelsync, or another program, listens there); choose another port',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EADDRNOTAVAIL: 'this machine has no such address',
    ENOTFOUND: 'no such host name',
    EAI_AGAIN: 'the host name cannot be resolved',
  };
  const reason = (err.code && why[err.code]) ?? err.message;
  return new ConfigError(`listen: cannot listen on ${address}: ${reason}${err.code ? ` (${err.code})` : ''}`, { listen: address, errno: err.code ?? null });
}
