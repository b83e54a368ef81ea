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

describe('boundedHttpClient ref advertisements', () => {
  it('answers the fetch that follows a ref listing with the advertisement just read, once, and only for the same request', async () => {
    const seen: string[] = [];
    let n = 0;
    const hub = await serve((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`.trim());
      if (req.method === 'POST') return res.end('pack');
      n++;
      res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
      // Each advertisement differs, so a replay is told apart from a fresh one.
      const line = `${'a'.repeat(39)}${n} refs/heads/main\n`;
      res.end(`001e# service=git-upload-pack\n0000${(line.length + 4).toString(16).padStart(4, '0')}${line}0000`);
    });
    const client = boundedHttpClient(5_000);
    const adv = `${hub}/r.git/info/refs?service=git-upload-pack`;
    const get = async (headers: Record<string, string> = {}) => drain((await client.request({ url: adv, method: 'GET', headers })).body);
    const first = await get();
    expect(await get()).toBe(first); // the fetch's own listing: not sent again
    const third = await get(); // a third ask is a new question
    expect(third).not.toBe(first);
    expect(await get({ Authorization: 'Basic eDp5' })).not.toBe(third); // other credentials: never a replay
    await drain((await client.request({ url: `${hub}/r.git/git-upload-pack`, method: 'POST', headers: {} })).body);
    expect(seen).toEqual([`GET /r.git/info/refs?service=git-upload-pack`, `GET /r.git/info/refs?service=git-upload-pack`, `GET /r.git/info/refs?service=git-upload-pack Basic eDp5`, 'POST /r.git/git-upload-pack']);
  });
});
