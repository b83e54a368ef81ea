/**
 * Git smart HTTP through git's own `http-backend`, run as a CGI program: the
 * request body streams into its stdin, its stdout (CGI headers, then the
 * pack) streams back to the client. Git does the protocol; we only decide who
 * may talk to it.
 */
import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import { HttpError } from './http-util.ts';

export interface BackendRequest {
  projectRoot: string;
  /** `/<name>.git/<rest>`, already validated. */
  pathInfo: string;
  query: string;
  /** Token name, for git's reflog and hooks; never a secret. */
  remoteUser: string;
  maxBodyBytes: number;
  logger: Logger;
  /**
   * Runs after git exits and before the response ends, so whatever it does
   * (publish change events) has happened by the time the client's push returns.
   */
  beforeEnd?: () => Promise<void>;
}

export interface BackendResult {
  status: number;
  exitCode: number | null;
}

const MAX_CGI_HEADER_BYTES = 64 << 10;
// Only these request headers mean anything to http-backend.
const SAFE_GIT_PROTOCOL = /^[A-Za-z0-9=:._-]{1,256}$/;

export function runHttpBackend(req: IncomingMessage, res: ServerResponse, r: BackendRequest): Promise<BackendResult> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: 'C',
    GIT_PROJECT_ROOT: r.projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    GATEWAY_INTERFACE: 'CGI/1.1',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: r.pathInfo,
    QUERY_STRING: r.query,
    REMOTE_USER: r.remoteUser,
    REMOTE_ADDR: req.socket.remoteAddress ?? '',
    CONTENT_TYPE: req.headers['content-type'] ?? '',
  };
  if (req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = req.headers['content-length'];
  const encoding = req.headers['content-encoding'];
  if (encoding === 'gzip' || encoding === 'x-gzip') env.HTTP_CONTENT_ENCODING = encoding;
  const proto = req.headers['git-protocol'];
  if (typeof proto === 'string' && SAFE_GIT_PROTOCOL.test(proto)) env.HTTP_GIT_PROTOCOL = proto;

  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > r.maxBodyBytes) {
    return Promise.reject(new HttpError(413, 'PayloadTooLarge', `git request body is larger than ${r.maxBodyBytes} bytes`, { Connection: 'close' }));
  }

  return new Promise<BackendResult>((resolve, reject) => {
    // receive.maxInputSize bounds the pack after HTTP gzip is undone: a small
    // compressed body cannot expand into an unbounded pack on disk.
    const args = ['-c', 'http.receivepack=true', '-c', `receive.maxInputSize=${r.maxBodyBytes}`, 'http-backend'];
    const child = spawn('git', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let status = 0;
    let settled = false;
    let stderr = '';
    let tooLarge = false;
    const finish = (err: Error | null, exitCode: number | null): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve({ status, exitCode });
    };

    child.on('error', (err) => finish(err, null));
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 8192) stderr += d.toString('utf8');
    });

    // Whatever goes wrong, git is stopped by closing its stdin, never by a
    // signal first: on EOF receive-pack fails cleanly and removes its
    // quarantine of incoming objects, where a killed one would leave it
    // behind. The kill is only a backstop for a git that does not exit.
    const stopInput = (): void => {
      if (!child.stdin.writableEnded) child.stdin.end();
    };
    let backstop: NodeJS.Timeout | undefined;
    const armBackstop = (): void => {
      backstop ??= setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
    };
    child.stdin.on('error', () => {}); // EPIPE: git answered without reading the body (404, 403)

    // Request body -> stdin with backpressure, counted so an endless body cannot fill the disk.
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      received += chunk.length;
      if (received > r.maxBodyBytes) {
        tooLarge = true;
        req.pause();
        stopInput();
        return;
      }
      if (!child.stdin.write(chunk)) {
        req.pause();
        child.stdin.once('drain', () => {
          if (!tooLarge) req.resume();
        });
      }
    });
    req.on('end', stopInput);
    req.on('close', stopInput);

    // CGI headers, then the body, streamed.
    let head = Buffer.alloc(0);
    let headersDone = false;
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = headerEnd(head);
      if (end === null) {
        if (head.length > MAX_CGI_HEADER_BYTES) {
          child.stdout.off('data', onData);
          child.stdout.resume();
          stopInput();
          armBackstop();
          finish(new Error('git http-backend sent oversized CGI headers'), null);
        }
        return;
      }
      headersDone = true;
      child.stdout.off('data', onData);
      const { status: st, headers } = parseCgiHeaders(head.subarray(0, end.at).toString('latin1'));
      status = st;
      res.writeHead(st, headers);
      const rest = head.subarray(end.at + end.len);
      if (rest.length > 0) res.write(rest);
      child.stdout.pipe(res, { end: false });
    };
    child.stdout.on('data', onData);

    res.on('close', () => {
      if (res.writableFinished || child.exitCode !== null) return;
      // The client went away mid-response: let git run out on EOF, its output discarded.
      child.stdout.unpipe(res);
      child.stdout.resume();
      stopInput();
      armBackstop();
    });

    child.on('close', (code) => {
      clearTimeout(backstop);
      if (tooLarge) {
        const error = new HttpError(413, 'PayloadTooLarge', `git request body is larger than ${r.maxBodyBytes} bytes`, { Connection: 'close' });
        if (!res.headersSent) return finish(error, code);
        // git has already answered (its error report); end that, then drop
        // the connection rather than read the rest of the oversized body.
        res.end(() => req.socket.destroy());
        return finish(null, code);
      }
      if (code !== 0) r.logger.warn({ path: r.pathInfo, exitCode: code, stderr: stderr.trim().slice(0, 2000) }, 'git http-backend failed');
      if (!headersDone) {
        if (!res.headersSent) finish(new HttpError(502, 'GitBackendFailed', 'git http-backend produced no response'), code);
        else finish(null, code);
        return;
      }
      // stdout has been piped into res (not ended): run the hook, then end.
      const end = (): void => {
        if (res.destroyed) return finish(null, code);
        res.once('finish', () => finish(null, code));
        res.once('close', () => finish(null, code));
        res.end();
      };
      if (r.beforeEnd) {
        r.beforeEnd().then(end, (err: Error) => {
          r.logger.error({ path: r.pathInfo, err: err.message }, 'after-push step failed');
          end();
        });
      } else end();
    });
  });
}

function headerEnd(buf: Buffer): { at: number; len: number } | null {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { at: crlf, len: 4 };
  if (lf >= 0) return { at: lf, len: 2 };
  return null;
}

export function parseCgiHeaders(text: string): { status: number; headers: Record<string, string> } {
  let status = 200;
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') {
      const n = Number.parseInt(value, 10);
      if (n >= 100 && n <= 599) status = n;
    } else if (/^[A-Za-z0-9-]+$/.test(name)) {
      headers[name] = value;
    }
  }
  return { status, headers };
}
