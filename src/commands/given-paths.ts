/**
 * One rule for paths and URLs given on the command line: something the
 * command line names that is not there, or is not what the flag wants, is a
 * usage error (exit 2), worded the same everywhere: `--store /x does not
 * exist`, `--store /x is not a modelsync store (…)`, `--hub 127.0.0.1:9080 is
 * not a URL`. (A path inside agent.yaml that is wrong is a configuration
 * error, exit 1: the command line was fine.)
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import type { CommandContext } from './context.ts';

/**
 * `--store <dir>`: an existing directory that holds a store (models/ or state.json), or an empty
 * one: a store no pass has filled yet (status says so, pin can be set before the first pass).
 */
export function requireStore(ctx: CommandContext, value: string, flag = '--store'): string {
  const dir = resolve(ctx.cwd, value);
  if (!existsSync(dir)) throw new UsageError(`${flag} ${value} does not exist`, { store: dir });
  if (!statSync(dir).isDirectory()) throw new UsageError(`${flag} ${value} is not a directory`, { store: dir });
  if (!existsSync(join(dir, 'models')) && !existsSync(join(dir, 'state.json')) && readdirSync(dir).length > 0) {
    throw new UsageError(`${flag} ${value} is not a modelsync store (no models/ or state.json in it; a pass creates them)`, { store: dir });
  }
  return dir;
}

/**
 * `--hub <url>`: the hub's base URL. Anything else is a usage error saying
 * what to give: `127.0.0.1:27080` lacks the scheme, and
 * `http://hub:9080/registry.git` is a repository, not the hub.
 */
export function hubBaseUrl(value: string, flag = '--hub'): string {
  let u: URL | undefined;
  try {
    u = new URL(value);
  } catch {
    u = undefined;
  }
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || !u.host) {
    const guess = /^[\w.-]+:\d+$/.test(value) || /^[\w.-]+$/.test(value) ? ` (did you mean http://${value}?)` : '';
    throw new UsageError(`${flag} ${JSON.stringify(value)} is not an http(s) URL; give the hub's base URL, e.g. http://127.0.0.1:9080${guess}`);
  }
  if (/\.git\/?$/.test(u.pathname) || /\/info\/(refs|lfs)/.test(u.pathname)) {
    const base = `${u.protocol}//${u.host}${u.pathname.replace(/\/[^/]*\.git(\/.*)?$/, '')}`;
    throw new UsageError(`${flag} ${JSON.stringify(value)} names a repository; give the hub's base URL (${base})`);
  }
  return value;
}
