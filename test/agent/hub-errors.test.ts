/**
 * The agent's hub connection as an operator reads it: credentials in a `hub`
 * URL never reach /status or the logs (they become the token), and a hub that
 * cannot be reached says why (ECONNREFUSED), not just "fetch failed".
 */
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';
import { captureLogger, current, faceRegistry, startAgent, waitFor } from './helpers/agent.ts';

const env = isolatedGitEnv();

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('agent hub connection', () => {
  it('a hub URL with credentials: they become the token and never show in /status or the logs', async () => {
    const th = await startTestHub({ tokens: true, sites: ['alpha'] });
    const reg = faceRegistry('agent-hubcred-reg-', env);
    reg.git('remote', 'add', 'origin', th.repoUrl('registry', th.secrets.publisher));
    await gitAsync(['push', '-q', '-u', 'origin', 'main'], { cwd: reg.dir, env });
    const secret = th.secrets.bySite.alpha!;
    const hub = th.url.replace('http://', `http://x:${secret}@`);
    const cap = captureLogger();
    const store = join(tempDir('agent-hubcred-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: `${th.url}/registry.git`, store, hub, listen: '127.0.0.1:0' }, { env: {}, logger: cap.logger });
    await agent.whenIdle();
    expect(current(store, 'face')).toBe('1'); // the token from the hub URL also reads the registry on that hub
    await waitFor(() => agent.status().hub?.connected === true, 'event stream');
    await waitFor(() => agent.status().hub?.lastReportAt !== null, 'a report');
    expect(agent.status().hub?.lastReportError).toBeNull();
    const served = await (await fetch(`${agent.url}/status`)).text();
    expect(served).not.toContain(secret);
    expect(JSON.parse(served).hub.url).toBe(`${th.url}/`);
    await agent.stop();
    expect(cap.text()).not.toContain(secret);
  });

  it('a hub that cannot be reached: the reason (ECONNREFUSED) in /status and the log, never the credentials', async () => {
    const port = await closedPort();
    const reg = faceRegistry('agent-hubdown-reg-', env);
    const cap = captureLogger();
    const store = join(tempDir('agent-hubdown-'), 'store');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, hub: `http://x:SECRET-hub-token@127.0.0.1:${port}` }, { logger: cap.logger });
    await agent.whenIdle();
    await waitFor(() => agent.status().hub?.lastReportError != null, 'a failed report');
    const status = agent.status();
    expect(status.conditions.find((c) => c.type === 'HubConnected')).toMatchObject({ status: false, message: 'cannot reach the server (ECONNREFUSED)' });
    expect(status.hub?.lastReportError).toBe(`POST http://127.0.0.1:${port}/api/v1/sites/alpha/status: cannot reach the server (ECONNREFUSED)`);
    await agent.stop();
    expect(JSON.stringify(agent.status())).not.toContain('SECRET-hub-token');
    expect(cap.text()).not.toContain('SECRET-hub-token');
    expect(cap.text()).toMatch(/cannot reach the server \(ECONNREFUSED\)/);
    expect(cap.text()).not.toMatch(/fetch failed/);
  });
});
