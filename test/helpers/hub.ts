/**
 * An in-process hub for tests: 127.0.0.1 on a free port, a temp data dir,
 * optionally a tokens file with one secret per role, closed after the file's
 * tests.
 */
import { randomBytes, createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { startHub, type Hub, type HubLimits } from '../../src/hub/index.ts';
import type { Logger } from '../../src/log.ts';
import { tempDir } from './env.ts';

export interface TestHubOptions {
  /** Write a tokens file (default false: loopback-only mode). */
  tokens?: boolean;
  /** Sites that get their own site token (default ['beta']). */
  sites?: string[];
  heartbeatMs?: number;
  limits?: Partial<HubLimits>;
  logger?: Logger;
  /** Reuse a data dir (e.g. to test a restart). */
  data?: string;
  /** Reuse a tokens file written by an earlier startTestHub. */
  tokensFile?: string;
}

export interface TestSecrets {
  admin: string;
  publisher: string;
  /** The token of the first site. */
  site: string;
  bySite: Record<string, string>;
}

export interface TestHub {
  hub: Hub;
  url: string;
  data: string;
  tokensFile?: string;
  /** Plaintext secrets per role (empty strings in loopback-only mode). */
  secrets: TestSecrets;
  /** `http://x:<secret>@127.0.0.1:<port>/<repo>.git` (no user info without a secret). */
  repoUrl(repo: string, secret?: string): string;
  /** Headers that authenticate as `secret` (Bearer). */
  auth(secret: string): Record<string, string>;
  close(): Promise<void>;
}

const running: Hub[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((h) => h.close()));
});

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export async function startTestHub(opts: TestHubOptions = {}): Promise<TestHub> {
  const data = opts.data ?? join(tempDir('modelsync-hub-'), 'data');
  const secrets: TestSecrets = { admin: '', publisher: '', site: '', bySite: {} };
  let tokensFile = opts.tokensFile;
  if (opts.tokens && !tokensFile) {
    const sites = opts.sites ?? ['beta'];
    const mk = (): string => randomBytes(24).toString('base64url');
    secrets.admin = mk();
    secrets.publisher = mk();
    for (const s of sites) secrets.bySite[s] = mk();
    secrets.site = secrets.bySite[sites[0]!] ?? '';
    const lines = [
      'tokens:',
      `  - {name: root, sha256: ${sha256(secrets.admin)}, role: admin}`,
      `  - {name: ci, sha256: ${sha256(secrets.publisher)}, role: publisher}`,
      ...sites.map((s) => `  - {name: site-${s}, sha256: ${sha256(secrets.bySite[s]!)}, role: site, sites: [${s}]}`),
    ];
    tokensFile = join(tempDir('modelsync-tokens-'), 'tokens.yaml');
    writeFileSync(tokensFile, `${lines.join('\n')}\n`);
  }
  const hub = await startHub({ data, listen: '127.0.0.1:0', tokensFile, heartbeatMs: opts.heartbeatMs, limits: opts.limits, logger: opts.logger });
  running.push(hub);
  const base = new URL(hub.url);
  return {
    hub,
    url: hub.url,
    data,
    tokensFile,
    secrets,
    repoUrl: (repo, secret) => `http://${secret ? `x:${encodeURIComponent(secret)}@` : ''}${base.host}/${repo}.git`,
    auth: (secret) => ({ Authorization: `Bearer ${secret}` }),
    close: async () => {
      const i = running.indexOf(hub);
      if (i >= 0) running.splice(i, 1);
      await hub.close();
    },
  };
}
