/**
 * A real inference server for the tests (OVMS and Triton cannot be installed
 * here): KServe v2 over HTTP on 127.0.0.1, with the repository rules of OVMS
 * (config.json, `POST /v1/config/reload`) or Triton (config.pbtxt, explicit
 * model control: `POST /v2/repository/models/<m>/load`), and the model files
 * actually loaded and run with onnxruntime-node. A file that does not load
 * leaves that version unavailable, as on the real servers.
 *
 * Status codes follow the servers where they agree (ready 200, not ready
 * 4xx, errors as `{"error": "..."}`); OVMS's reload answers 200 when every
 * model loaded and an error status naming the failures otherwise.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { numericVersions, readOvmsConfig, readTritonModel, selectVersions, type ModelDecl } from './repository.ts';

// onnxruntime-node is CommonJS with a native binding.
const ort = createRequire(import.meta.url)('onnxruntime-node') as typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

export type Mode = { kind: 'ovms'; config: string } | { kind: 'triton'; repo: string };

interface Loaded {
  session?: Session;
  state: 'AVAILABLE' | 'FAILED';
  error?: string;
}

export interface InferenceServer {
  url: string;
  /** Available versions of a model, ascending. */
  available(model: string): number[];
  /** Every request the server answered, as `METHOD path status`. */
  log: string[];
  /** Run one inference directly (what a client of the server would get). */
  infer(model: string, input: number[], shape: number[]): Promise<{ status: number; body: Record<string, unknown> }>;
  stop(): Promise<void>;
}

const DTYPES: Record<string, 'float32' | 'int32' | 'int64' | 'float64'> = { FP32: 'float32', INT32: 'int32', INT64: 'int64', FP64: 'float64' };

export async function startInferenceServer(mode: Mode): Promise<InferenceServer> {
  const models = new Map<string, Map<number, Loaded>>();
  const log: string[] = [];

  const loadModel = async (decl: ModelDecl): Promise<string[]> => {
    const want = selectVersions(decl.policy, numericVersions(decl.dir));
    const old = models.get(decl.name) ?? new Map<number, Loaded>();
    const next = new Map<number, Loaded>();
    const errors: string[] = [];
    for (const v of want) {
      const vdir = join(decl.dir, String(v));
      const file = decl.filename ?? (existsSync(vdir) ? readdirSync(vdir).find((f) => f.endsWith('.onnx')) : undefined);
      const path = file ? join(vdir, file) : undefined;
      if (!path || !existsSync(path)) {
        next.set(v, { state: 'FAILED', error: `version ${v}: no model file in ${vdir}` });
        errors.push(`${decl.name} version ${v}: no model file`);
        continue;
      }
      try {
        next.set(v, { state: 'AVAILABLE', session: await ort.InferenceSession.create(path) });
      } catch (err) {
        next.set(v, { state: 'FAILED', error: String(err) });
        errors.push(`${decl.name} version ${v}: ${String(err)}`);
      }
    }
    for (const [v, l] of old) if (!next.has(v)) await l.session?.release().catch(() => {});
    models.set(decl.name, next);
    return errors;
  };

  const ovmsReload = async (): Promise<string[]> => {
    if (mode.kind !== 'ovms') return [];
    if (!existsSync(mode.config)) return [];
    const decls = readOvmsConfig(mode.config);
    const errors: string[] = [];
    for (const d of decls) errors.push(...(await loadModel(d)));
    for (const name of [...models.keys()]) {
      if (!decls.some((d) => d.name === name)) {
        for (const l of models.get(name)!.values()) await l.session?.release().catch(() => {});
        models.delete(name);
      }
    }
    return errors;
  };
  if (mode.kind === 'ovms') await ovmsReload();

  const available = (m: string): number[] => [...(models.get(m) ?? new Map<number, Loaded>()).entries()].filter(([, l]) => l.state === 'AVAILABLE').map(([v]) => v).sort((a, b) => a - b);

  const runInfer = async (model: string, version: number | undefined, req: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const versions = available(model);
    const v = version ?? versions[versions.length - 1];
    const l = v === undefined ? undefined : models.get(model)?.get(v);
    if (!l?.session) return { status: 404, body: { error: `model ${model}${version ? ` version ${version}` : ''} is not available` } };
    const inputs = (req as { inputs?: Array<{ name: string; shape: number[]; datatype: string; data: unknown[] }> }).inputs;
    if (!Array.isArray(inputs)) return { status: 400, body: { error: 'inputs must be a list' } };
    const feeds: Record<string, import('onnxruntime-node').Tensor> = {};
    for (const i of inputs) {
      const t = DTYPES[i.datatype];
      if (!t) return { status: 400, body: { error: `unsupported datatype ${i.datatype}` } };
      const flat = (i.data as unknown[]).flat(16) as number[];
      const data = t === 'float32' ? Float32Array.from(flat) : t === 'float64' ? Float64Array.from(flat) : t === 'int32' ? Int32Array.from(flat) : BigInt64Array.from(flat.map((x) => BigInt(x)));
      feeds[i.name] = new ort.Tensor(t, data, i.shape);
    }
    try {
      const out = await l.session.run(feeds);
      return {
        status: 200,
        body: {
          model_name: model, model_version: String(v),
          outputs: Object.entries(out).map(([name, t]) => ({ name, shape: [...t.dims], datatype: 'FP32', data: Array.from(t.data as Float32Array, Number) })),
        },
      };
    } catch (err) {
      return { status: 400, body: { error: String(err) } };
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const body = await readBody(req);
    const send = (status: number, doc: unknown): void => {
      log.push(`${req.method} ${path} ${status}`);
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    };
    let m: RegExpExecArray | null;
    if (req.method === 'GET' && (path === '/v2/health/ready' || path === '/v2/health/live')) return send(200, {});
    if (req.method === 'POST' && path === '/v1/config/reload' && mode.kind === 'ovms') {
      let errors: string[];
      try {
        errors = await ovmsReload();
      } catch (err) {
        return send(400, { error: `config file invalid: ${String(err)}` });
      }
      const status = Object.fromEntries([...models].map(([name, vs]) => [name, { model_version_status: [...vs].map(([v, l]) => ({ version: String(v), state: l.state, status: { error_code: l.state === 'AVAILABLE' ? 'OK' : 'UNKNOWN', error_message: l.error ?? 'OK' } })) }]));
      return errors.length ? send(500, { error: `Reloading config file failed. ${errors.join('; ')}` }) : send(200, status);
    }
    if (req.method === 'POST' && mode.kind === 'triton' && (m = /^\/v2\/repository\/models\/([^/]+)\/(load|unload)$/.exec(path))) {
      const name = decodeURIComponent(m[1]!);
      if (m[2] === 'unload') {
        for (const l of models.get(name)?.values() ?? []) await l.session?.release().catch(() => {});
        models.delete(name);
        return send(200, {});
      }
      try {
        const errors = await loadModel(readTritonModel(mode.repo, name));
        if (errors.length) return send(400, { error: `failed to load '${name}': ${errors.join('; ')}` });
        return send(200, {});
      } catch (err) {
        return send(400, { error: (err as Error).message });
      }
    }
    if (req.method === 'GET' && (m = /^\/v2\/models\/([^/]+)(?:\/versions\/(\d+))?\/ready$/.exec(path))) {
      const vs = available(decodeURIComponent(m[1]!));
      const ok = m[2] === undefined ? vs.length > 0 : vs.includes(Number(m[2]));
      return send(ok ? 200 : 400, ok ? {} : { error: 'model is not ready' });
    }
    if (req.method === 'POST' && (m = /^\/v2\/models\/([^/]+)(?:\/versions\/(\d+))?\/infer$/.exec(path))) {
      let doc: unknown;
      try {
        doc = JSON.parse(body);
      } catch {
        return send(400, { error: 'request is not JSON' });
      }
      const r = await runInfer(decodeURIComponent(m[1]!), m[2] === undefined ? undefined : Number(m[2]), doc);
      return send(r.status, r.body);
    }
    return send(404, { error: `no route ${req.method} ${path}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(err) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    log,
    available,
    infer: (model, input, shape) => runInfer(model, undefined, { inputs: [{ name: 'X', shape, datatype: 'FP32', data: input }] }),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const vs of models.values()) for (const l of vs.values()) await l.session?.release().catch(() => {});
      models.clear();
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 16 << 20) req.destroy(new Error('request too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
