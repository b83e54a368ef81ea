/**
 * An in-process hub for tests: 127.0.0.1 on a free port, a temp data dir,
 * optionally a tokens file with one secret per role, closed after the file's
 * tests.
 */
import { randomBytes, createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { startHub, type Hub, type HubLimits, type HubOptions } from '../../src/hub/index.ts';
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
  /** Seconds between rollout controller rounds (the hub's default otherwise). */
  rolloutIntervalS?: number;
  /** A notify.yaml. */
  notify?: string;
  notifyDelivery?: HubOptions['notifyDelivery'];
  /** `--objects` (s3://…) and how to reach the bucket. */
  objects?: string;
  s3?: HubOptions['s3'];
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
  const hub = await startHub({ data, listen: '127.0.0.1:0', tokensFile, heartbeatMs: opts.heartbeatMs, limits: opts.limits, logger: opts.logger, rolloutIntervalS: opts.rolloutIntervalS, notifyFile: opts.notify, notifyDelivery: opts.notifyDelivery, objects: opts.objects, s3: opts.s3 });
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

export interface SseFrame {
  id?: string;
  event: string;
  data: string;
}

export interface EventStream {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  frames: SseFrame[];
  /** Comment lines (heartbeats) seen so far. */
  comments: string[];
  /** The first frame (already received or future) matching `pred`. */
  next(pred?: (f: SseFrame) => boolean, timeoutMs?: number): Promise<SseFrame>;
  close(): void;
}

/** Subscribe to a hub's `/api/v1/events` (or any SSE URL) and collect frames. */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Accept: 'text/event-stream', ...headers } }, (res) => {
      const frames: SseFrame[] = [];
      const comments: string[] = [];
      const waiters: Array<{ pred: (f: SseFrame) => boolean; done: (f: SseFrame) => void }> = [];
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let sep: number;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          const frame: SseFrame = { event: 'message', data: '' };
          let hasData = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) {
              comments.push(line.slice(1).trim());
              continue;
            }
            const c = line.indexOf(':');
            const k = c < 0 ? line : line.slice(0, c);
            const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (k === 'id') frame.id = v;
            else if (k === 'event') frame.event = v;
            else if (k === 'data') {
              frame.data = hasData ? `${frame.data}\n${v}` : v;
              hasData = true;
            }
          }
          // Per the SSE spec, a block without data dispatches nothing.
          if (!hasData) continue;
          frames.push(frame);
          for (const w of [...waiters]) if (w.pred(frame)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.done(frame);
          }
        }
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        frames,
        comments,
        next: (pred = () => true, timeoutMs = 10_000) =>
          new Promise((done, fail) => {
            const have = frames.find(pred);
            if (have) return done(have);
            const t = setTimeout(() => fail(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(frames)}`)), timeoutMs);
            waiters.push({ pred, done: (f) => (clearTimeout(t), done(f)) });
          }),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}
