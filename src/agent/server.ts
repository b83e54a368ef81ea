/**
 * The agent's own HTTP endpoint on `listen`: `/healthz` (the agent is alive),
 * `/status` (what this site runs, as JSON), `/metrics` (Prometheus) and the
 * webhook `POST /api/v1/reconcile`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { listenError } from '../util/listen-error.ts';
import type { Logger } from '../log.ts';
import { MAX_WEBHOOK_BODY, SIGNATURE_HEADER, verifySignature, webhookHint } from './webhook.ts';

export interface AgentServerHandlers {
  status(): unknown;
  metrics(): string;
  /** When set, webhooks must carry a valid X-Hub-Signature-256. */
  webhookSecret?: string;
  /** A valid webhook arrived; returns whether it started a pass or joined a queued one. */
  onWebhook(hint: string): { started: boolean };
  logger: Logger;
}

export interface AgentServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startAgentServer(host: string, port: number, h: AgentServerHandlers): Promise<AgentServer> {
  const server = createServer((req, res) => {
    handle(req, res, h).catch((err) => {
      h.logger.warn({ err: String(err) }, 'agent http handler failed');
      if (!res.headersSent) send(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  // Slow-loris protection: a webhook body arrives in seconds or not at all.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: NodeJS.ErrnoException): void => reject(listenError(host, port, err));
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server,
    url: `http://${shownHost}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, h: AgentServerHandlers): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const method = req.method ?? 'GET';
  if (path === '/api/v1/reconcile') {
    if (method !== 'POST') return send(res, 405, { error: 'use POST' }, { allow: 'POST' });
    return webhook(req, res, h);
  }
  if (method !== 'GET' && method !== 'HEAD') return send(res, 405, { error: 'method not allowed' }, { allow: 'GET' });
  switch (path) {
    case '/healthz':
      return send(res, 200, 'ok\n');
    case '/status':
      return send(res, 200, h.status());
    case '/metrics':
      return send(res, 200, h.metrics(), { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    default:
      return send(res, 404, { error: `no such endpoint ${path}` });
  }
}

async function webhook(req: IncomingMessage, res: ServerResponse, h: AgentServerHandlers): Promise<void> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_WEBHOOK_BODY) {
    res.setHeader('connection', 'close');
    return send(res, 413, { error: `body larger than ${MAX_WEBHOOK_BODY} bytes` });
  }
  // No signature at all: refused before a byte of the body is read (nobody gets to make us buffer 1 MiB).
  const header = req.headers[SIGNATURE_HEADER];
  if (h.webhookSecret !== undefined && (header === undefined || header === '')) {
    h.logger.warn({ verdict: 'missing', remote: req.socket.remoteAddress }, 'webhook refused: bad signature');
    res.setHeader('connection', 'close');
    send(res, 401, { error: 'X-Hub-Signature-256 is required' });
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_WEBHOOK_BODY) {
      res.setHeader('connection', 'close');
      send(res, 413, { error: `body larger than ${MAX_WEBHOOK_BODY} bytes` });
      req.destroy();
      return;
    }
    chunks.push(chunk as Buffer);
  }
  const body = Buffer.concat(chunks);
  if (h.webhookSecret !== undefined) {
    const verdict = verifySignature(h.webhookSecret, body, req.headers[SIGNATURE_HEADER]);
    if (verdict !== 'ok') {
      h.logger.warn({ verdict, remote: req.socket.remoteAddress }, 'webhook refused: bad signature');
      const why = verdict === 'missing' ? 'X-Hub-Signature-256 is required' : verdict === 'malformed' ? 'X-Hub-Signature-256 must be sha256= followed by 64 hex digits' : 'signature does not match';
      return send(res, 401, { error: why });
    }
  }
  const hint = webhookHint(body, req.headers);
  const { started } = h.onWebhook(hint);
  send(res, 202, { accepted: true, pass: started ? 'started' : 'queued' });
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
