import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { boundedHttpClient } from './git-http.ts';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const s = createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function drain(body: AsyncIterableIterator<Uint8Array> | undefined): Promise<string> {
  let text = '';
  for await (const c of body ?? []) text += Buffer.from(c).toString();
  return text;
}

describe('boundedHttpClient redirects', () => {
  it('keeps credentials on the same origin and drops them on a redirect to another host', async () => {
    const seen: Array<{ where: string; headers: IncomingHttpHeaders }> = [];
    const other = await serve((req, res) => {
      seen.push({ where: 'other', headers: req.headers });
      res.end('refs');
    });
    const hub = await serve((req, res) => {
      seen.push({ where: `hub ${req.url}`, headers: req.headers });
      if (req.url === '/old.git/info/refs') return res.writeHead(301, { location: '/new.git/info/refs' }).end();
      res.writeHead(302, { location: `${other}/elsewhere.git/info/refs` }).end();
    });
    const client = boundedHttpClient(5_000);
    const res = await client.request({ url: `${hub}/old.git/info/refs`, method: 'GET', headers: { Authorization: 'Basic c2VjcmV0', 'user-agent': 'git/x' } });
    expect(res.statusCode).toBe(200);
    expect(await drain(res.body)).toBe('refs');
    expect(seen.map((s) => s.where)).toEqual(['hub /old.git/info/refs', 'hub /new.git/info/refs', 'other']);
    expect(seen[1]!.headers.authorization).toBe('Basic c2VjcmV0');
    expect(seen[2]!.headers.authorization).toBeUndefined();
    expect(seen[2]!.headers['user-agent']).toBe('git/x');
  });
});
