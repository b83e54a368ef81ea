import { createServer, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../log.ts';
import { systemClock } from './clock.ts';
import { EventSubscriber, SseParser, type ServerSentEvent } from './events.ts';
import { ManualClock, settle } from '../../test/agent/helpers/manual-clock.ts';

describe('SseParser', () => {
  it('parses events split across chunks, with comments, ids and multi-line data', () => {
    const got: ServerSentEvent[] = [];
    const p = new SseParser((e) => got.push(e));
    const text = 'retry: 3000\n: hello\n\nid: e-1\nevent: ref\ndata: {"repo":\ndata: "registry"}\n\r\ndata: plain\r\n\r\n';
    for (const ch of text) p.push(ch);
    expect(got).toEqual([
      { event: 'ref', data: '{"repo":\n"registry"}', id: 'e-1' },
      { event: 'message', data: 'plain', id: 'e-1' },
    ]);
  });
});

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.close();
    s.closeAllConnections();
  }
});

describe('EventSubscriber', () => {
  it('reconnects after the stream drops and resumes from the last event id', async () => {
    const requests: Array<{ auth?: string; lastId?: string }> = [];
    const open: ServerResponse[] = [];
    const server = createServer((req, res) => {
      requests.push({ auth: req.headers.authorization, lastId: req.headers['last-event-id'] as string | undefined });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`: hi\n\nid: e-${requests.length}\nevent: ref\ndata: {"n":${requests.length}}\n\n`);
      open.push(res);
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/events`;

    const events: string[] = [];
    const opens: boolean[] = [];
    let closes = 0;
    const sub = new EventSubscriber({
      url, token: 'tok', fetch, clock: systemClock, logger: silentLogger, backoffBaseMs: 20, backoffMaxMs: 50,
      onEvent: (e) => events.push(`${e.event} ${e.data}`),
      onOpen: (re) => opens.push(re),
      onClose: () => closes++,
    });
    sub.start();
    await waitFor(() => events.length === 1);
    expect(sub.connected).toBe(true);
    open[0]!.destroy();
    await waitFor(() => events.length === 2);
    sub.stop();
    expect(events).toEqual(['ref {"n":1}', 'ref {"n":2}']);
    expect(opens).toEqual([false, true]);
    expect(closes).toBe(1);
    expect(requests).toEqual([{ auth: 'Bearer tok', lastId: undefined }, { auth: 'Bearer tok', lastId: 'e-1' }]);
  });

  it('keeps retrying while nobody answers, and connects when the server appears', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: ref\ndata: {}\n\n');
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    server.close();
    await new Promise((r) => setTimeout(r, 50));
    const events: string[] = [];
    const sub = new EventSubscriber({
      url: `http://127.0.0.1:${port}/api/v1/events`, fetch, clock: systemClock, logger: silentLogger, backoffBaseMs: 20, backoffMaxMs: 40,
      onEvent: (e) => events.push(e.event),
    });
    sub.start();
    await new Promise((r) => setTimeout(r, 150));
    expect(sub.connected).toBe(false);
    expect(sub.lastError).toBeTruthy();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    await waitFor(() => events.length > 0);
    sub.stop();
    expect(events[0]).toBe('ref');
  });
});

describe('EventSubscriber against a flapping hub', () => {
  it('backs off when the stream is dropped right after it opens, and starts over after a stable connection', async () => {
    const clock = new ManualClock();
    let holdOpen: ReadableStreamDefaultController<Uint8Array> | undefined;
    let keepNext = false;
    const fakeFetch = (async () => {
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          if (keepNext) holdOpen = c;
          else c.close(); // accepted, then dropped at once
        },
      });
      return new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } });
    }) as typeof fetch;
    let opens = 0;
    const sub = new EventSubscriber({
      url: 'http://hub.test/api/v1/events', fetch: fakeFetch, clock, logger: silentLogger, random: () => 1,
      backoffBaseMs: 500, backoffMaxMs: 60_000, stableMs: 30_000, onEvent: () => {}, onOpen: () => void opens++,
    });
    sub.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      await settle();
      const next = clock.pending().at(-1)! - clock.now();
      delays.push(next);
      await clock.advance(next);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000]);
    expect(opens).toBe(7);
    // A connection that stays up past stableMs: when it drops, the next reconnect is quick again.
    keepNext = true;
    await clock.advance(clock.pending().at(-1)! - clock.now());
    await settle();
    expect(sub.connected).toBe(true);
    await clock.advance(40_000);
    keepNext = false;
    holdOpen!.close();
    await settle();
    expect(clock.pending().at(-1)! - clock.now()).toBe(500);
    sub.stop();
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
