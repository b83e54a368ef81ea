/**
 * Where a mirror's upstream is: the registry URL the operator gave
 * (`https://hub.example/registry.git`) names the hub (`https://hub.example`,
 * for events and reports), the repository (`registry`, the name the mirror
 * serves it under) and the LFS endpoint (`…/registry.git/info/lfs`). The
 * token comes from --token-file or the URL's user info, and never stays in
 * a URL we keep or print.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, UsageError } from '../../errors.ts';
import { redactUrl } from '../../util/redact.ts';
import { repoNameProblem } from '../repos.ts';

export interface Upstream {
  /** The registry URL without credentials (what git fetches). */
  repoUrl: string;
  /** The hub's base URL without a trailing slash: `<base>/api/v1/events`, `<base>/api/v1/sites/…`. */
  base: string;
  /** The repository name on the upstream, and on the mirror. */
  repo: string;
  /** `<repoUrl>/info/lfs`. */
  lfsUrl: string;
  /** For logs and error messages. */
  description: string;
  token: string | undefined;
}

export function parseUpstream(url: string, token?: string): Upstream {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--mirror must be the upstream registry's URL (http(s)://hub.example/registry.git), got ${JSON.stringify(redactUrl(url))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--mirror must be an http(s) URL, got ${JSON.stringify(redactUrl(url))}`);
  if (u.search || u.hash) throw new UsageError('--mirror must not carry a query or fragment');
  const fromUrl = u.password ? decodeURIComponent(u.password) : u.username ? decodeURIComponent(u.username) : undefined;
  u.username = '';
  u.password = '';
  const m = /^(.*)\/([^/]+?)(?:\.git)?\/?$/.exec(u.pathname);
  const repo = m?.[2] ?? '';
  const problem = repoNameProblem(repo);
  if (!m || problem) throw new UsageError(`--mirror must end in /<repo>.git (the upstream hub's repository), got ${JSON.stringify(u.toString())}${problem ? `: the repository name ${problem}` : ''}`);
  const base = `${u.origin}${m[1]}`;
  const repoUrl = `${base}/${repo}.git`;
  return { repoUrl, base, repo, lfsUrl: `${repoUrl}/info/lfs`, description: repoUrl, token: token ?? fromUrl };
}

/** The token in `file` (trimmed); an empty or unreadable file is a configuration error naming it. */
export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--token-file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file });
  }
  const token = text.trim();
  if (!token || /\s/.test(token)) throw new ConfigError(`--token-file ${file}: must hold one token (no spaces or line breaks inside)`, { file });
  return token;
}
