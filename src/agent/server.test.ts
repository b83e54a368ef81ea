import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.ts';
import { startAgentServer, type AgentServer } from './server.ts';
import { signBody } from './webhook.ts';

const servers: AgentServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function start(secret?: string): Promise<{ server: AgentServer; hints: string[] }> {
  const hints: string[] = [];
  const server = await startAgentServer('127.0.0.1', 0, {
    status: () => ({ site: 'beta', phase: 'idle' }),
    metrics: () => 'modelsync_degraded{site="beta"} 0\n',
    webhookSecret: secret,
    onWebhook: (hint) => {
      hints.push(hint);
      return { started: hints.length === 1 };
    },
    logger: silentLogger,
  });
  servers.push(server);
  return { server, hints };
}

const push = JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: 'ops/registry' } });

describe('webhook POST /api/v1/reconcile', () => {
  it('accepts a good signature and starts a pass', async () => {
    const { server, hints } = await start('s3cret');
    const res = await fetch(`${server.url}/api/v1/reconcile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': signBody('s3cret', push) },
      body: push,
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: true, pass: 'started' });
    expect(hints).toEqual(['push ops/registry refs/heads/main']);
  });

  it('refuses a wrong signature, a signature of another body, and a malformed header', async () => {
    const { server, hints } = await start('s3cret');
    const tries = [
      signBody('other-secret', push),
      signBody('s3cret', `${push} `),
      'sha1=abcdef',
      `sha256=${'0'.repeat(64)}`,
    ];
    for (const sig of tries) {
      const res = await fetch(`${server.url}/api/v1/reconcile`, { method: 'POST', headers: { 'x-hub-signature-256': sig }, body: push });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toMatch(/signature/i);
    }
    expect(hints).toEqual([]);
  });

  it('requires the signature when a secret is set', async () => {
    const { server, hints } = await start('s3cret');
    const res = await fetch(`${server.url}/api/v1/reconcile`, { method: 'POST', body: push });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: 'X-Hub-Signature-256 is required' });
    expect(hints).toEqual([]);
  });

  it('answers a missing signature before the body arrives; a malformed one says what the header must hold', async () => {
    const { server, hints } = await start('s3cret');
    // Headers announce 1 MiB; not a byte of it is sent: the 401 must come anyway.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${server.url}/api/v1/reconcile`, { method: 'POST', headers: { 'content-length': String(1 << 20) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      req.flushHeaders();
      setTimeout(() => reject(new Error('no answer before the body')), 5000);
    });
    expect(status).toBe(401);
    const bad = await fetch(`${server.url}/api/v1/reconcile`, { method: 'POST', headers: { 'x-hub-signature-256': 'sha256=deadbeef' }, body: push });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ error: 'X-Hub-Signature-256 must be sha256= followed by 64 hex digits' });
    expect(hints).toEqual([]);
  });

  it('accepts unsigned hints without a secret, and an empty body', async () => {
    const { server, hints } = await start();
    const a = await fetch(`${server.url}/api/v1/reconcile`, { method: 'POST', body: push });
    const b = await fetch(`${server.url}/api/v1/reconcile`, { method: 'POST' });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(await b.json()).toEqual({ accepted: true, pass: 'queued' });
    expect(hints).toEqual(['ops/registry refs/heads/main', 'webhook']);
  });

  it('refuses oversized bodies and other methods', async () => {
    const { server, hints } = await start();
    const big = await fetch(`${server.url}/api/v1/reconcile`, { method: 'POST', body: 'x'.repeat((1 << 20) + 1) });
    expect(big.status).toBe(413);
    const get = await fetch(`${server.url}/api/v1/reconcile`);
    expect(get.status).toBe(405);
    expect(hints).toEqual([]);
  });
});

describe('status endpoints', () => {
  it('serves /healthz, /status and /metrics', async () => {
    const { server } = await start();
    expect(await (await fetch(`${server.url}/healthz`)).text()).toBe('ok\n');
    expect(await (await fetch(`${server.url}/status`)).json()).toEqual({ site: 'beta', phase: 'idle' });
    const m = await fetch(`${server.url}/metrics`);
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await m.text()).toContain('modelsync_degraded{site="beta"} 0');
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  });
});
