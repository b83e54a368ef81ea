/**
 * The mirror's report forwarder (src/hub/mirror/forward.ts) against an
 * upstream that answers a forwarded report with an endless body: the mirror
 * reads no more of it than it prints, and the report's fate (dropped on a
 * 422, kept on a 503) is as for a short answer.
 */
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReportForwarder } from '../../src/hub/mirror/forward.ts';
import { parseUpstream } from '../../src/hub/mirror/upstream.ts';
import { SitesStatus } from '../../src/hub/sites-status.ts';
import { captureLogger } from '../agent/helpers/agent.ts';
import { tempDir } from '../helpers/env.ts';

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** An upstream answering every report with `status` and a body that never ends; counts what it got written. */
async function endlessUpstream(status: number): Promise<{ url: string; written: () => number }> {
  let written = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(status, { 'content-type': 'text/plain' });
    const pump = (): void => {
      for (;;) {
        if (res.destroyed) return;
        written += chunk.length;
        if (!res.write(chunk)) break;
      }
      res.once('drain', pump);
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/registry.git`, written: () => written };
}

async function forwarderTo(url: string): Promise<{ fw: ReportForwarder; log: ReturnType<typeof captureLogger> }> {
  const data = tempDir('mirror-fwd-');
  const dir = join(data, 'mirror');
  mkdirSync(dir, { recursive: true });
  const log = captureLogger();
  const sites = new SitesStatus(data, log.logger);
  await sites.put('north-1', { agentVersion: 'test' });
  const fw = new ReportForwarder({ upstream: parseUpstream(url, 'tok'), sites, dir, mirrorName: 'm', logger: log.logger, lastSyncAt: () => null, backoffBaseMs: 60_000 });
  closers.push(() => fw.close());
  return { fw, log };
}

describe('mirror report forwarding against a hostile upstream', () => {
  it('reads only the start of an endless refusal, and drops the report as for any 422', async () => {
    const up = await endlessUpstream(422);
    const { fw, log } = await forwarderTo(up.url);
    fw.enqueue('north-1', new Date().toISOString());
    await fw.idle();
    expect(fw.queued).toBe(0);
    const warn = log.lines().find((l) => l.msg.includes('refused a forwarded status report'));
    expect(String(warn?.reason)).toMatch(/answered 422: a{10}/);
    // What socket buffers hold, not the 15 s of loopback speed the old read took.
    expect(up.written()).toBeLessThan(32 << 20);
  }, 30_000);

  it('keeps the report for a retry on an endless 503', async () => {
    const up = await endlessUpstream(503);
    const { fw } = await forwarderTo(up.url);
    fw.enqueue('north-1', new Date().toISOString());
    await fw.idle();
    expect(fw.queued).toBe(1);
    expect(fw.lastError).toMatch(/answered 503/);
    expect(up.written()).toBeLessThan(32 << 20);
  }, 30_000);
});
