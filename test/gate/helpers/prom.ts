/**
 * A Prometheus-compatible endpoint of the test's own: a real HTTP server on
 * 127.0.0.1 answering the instant-query API (`GET /api/v1/query?query=…`)
 * as Prometheus does (a vector of [time, "value"] pairs). The test says what
 * value each next query sees: a constant, or a list consumed one per query
 * (its last entry repeats), so "a rate that falls over time" is a list.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PromStub {
  url: string;
  port: number;
  /** Queries received, with their `query` parameter. */
  queries: string[];
  /** Values the next queries see, in order (the last one repeats); `null` is an empty answer, NaN is "NaN". */
  setValues(values: Array<number | null>): void;
  close(): Promise<void>;
}

export async function startPromStub(values: Array<number | null> = [20], port = 0): Promise<PromStub> {
  let queue = [...values];
  const queries: string[] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname !== '/api/v1/query') {
      res.writeHead(404).end();
      return;
    }
    const query = u.searchParams.get('query') ?? '';
    queries.push(query);
    const v = queue.length > 1 ? queue.shift()! : queue[0]!;
    const result = v === null ? [] : [{ metric: { __name__: 'fps', model: 'face' }, value: [Date.now() / 1000, Number.isNaN(v) ? 'NaN' : String(v)] }];
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${p}/api/v1/query`,
    port: p,
    queries,
    setValues: (v) => void (queue = [...v]),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A loopback port nothing listens on (taken and released). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
