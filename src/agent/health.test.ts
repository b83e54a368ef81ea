import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkHealth } from './health.ts';
import { applyService, runArgv } from './services.ts';

const node = process.execPath;
const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function httpServer(handler: (n: number) => number): Promise<string> {
  let n = 0;
  const s = createServer((_req, res) => {
    res.statusCode = handler(++n);
    res.end('x');
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}/ready`;
}

describe('runArgv', () => {
  it('runs without a shell: metacharacters are plain arguments', async () => {
    const r = await runArgv([node, '-e', 'console.log(process.argv[1])', '$(echo pwned); rm -rf /'], { timeoutMs: 10_000 });
    expect(r.code).toBe(0);
    expect(r.output).toBe('$(echo pwned); rm -rf /');
  });

  it('kills a command that outlives its timeout', async () => {
    const r = await runArgv([node, '-e', 'setTimeout(() => {}, 60000)'], { timeoutMs: 300 });
    expect(r.timedOut).toBe(true);
    expect(r.ms).toBeLessThan(5000);
  });

  it('stops at once when its stop signal has already fired (a check started while the agent stops)', async () => {
    const r = await runArgv([node, '-e', 'setTimeout(() => {}, 60000)'], { timeoutMs: 30_000, signal: AbortSignal.abort() });
    expect(r.timedOut).toBe(true);
    expect(r.ms).toBeLessThan(5000);
  });

  it('reports a missing program as a ServiceError', async () => {
    await expect(runArgv(['/nonexistent/restart-me'], { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'ServiceError' });
  });
});

describe('checkHealth', () => {
  it('passes when a command exits 0', async () => {
    const r = await checkHealth({ command: [node, '-e', 'process.exit(0)'], timeout_s: 5, interval_s: 0.1 }, { fetch });
    expect(r).toMatchObject({ ok: true, tries: 1 });
  });

  it('retries until the service comes up', async () => {
    const url = await httpServer((n) => (n < 3 ? 503 : 200));
    const r = await checkHealth({ http: url, timeout_s: 5, interval_s: 0.05 }, { fetch });
    expect(r).toMatchObject({ ok: true, tries: 3 });
  });

  it('fails after the timeout with the last reason', async () => {
    const r = await checkHealth(
      { command: [node, '-e', 'console.error("model file unreadable"); process.exit(3)'], timeout_s: 2, interval_s: 0.2 },
      { fetch },
    );
    expect(r.ok).toBe(false);
    expect(r.tries).toBeGreaterThanOrEqual(2);
    expect(r.message).toMatch(/exited with 3: model file unreadable/);
  });

  it('fails an http check that never answers 2xx, and one nobody listens on', async () => {
    const url = await httpServer(() => 500);
    const a = await checkHealth({ http: url, timeout_s: 0.3, interval_s: 0.1 }, { fetch });
    expect(a.ok).toBe(false);
    expect(a.message).toMatch(/answered 500/);
    const b = await checkHealth({ http: 'http://127.0.0.1:1/ready', timeout_s: 0.3, interval_s: 0.1 }, { fetch });
    expect(b.ok).toBe(false);
  });
});

describe('applyService', () => {
  it('reloads over HTTP and restarts with an argv', async () => {
    const url = await httpServer(() => 200);
    const r = await applyService({ name: 'ovms', models: ['m'], reload: { http: url, method: 'POST' } }, { fetch });
    expect(r).toMatchObject({ action: 'reload', ok: true });
    const bad = await applyService({ name: 'svc', models: ['m'], restart: [node, '-e', 'process.exit(1)'] }, { fetch });
    expect(bad).toMatchObject({ action: 'restart', ok: false });
    expect(bad.message).toMatch(/exited with 1/);
  });
});
