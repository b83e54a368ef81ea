/**
 * agent.yaml, with every key also a flag (`token_file` as `--token-file`) and
 * a `MODELSYNC_*` variable (`MODELSYNC_TOKEN_FILE`). Precedence: flag, then
 * environment, then file, then the schema's defaults. `MODELSYNC_TOKEN` may
 * hold the token itself. Problems name where the value came from: the file
 * as `file:line:col`, a flag as `--flag`, a variable by its name.
 */
import { promises as fsp } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ConfigError, UsageError, formatProblem, errorMessage, type Problem } from '../errors.ts';
import { AgentConfigFile, HealthCheck, InferCheck, MetricGateSpec, ServiceSpec, ServingViewSpec, VerifySpec } from '../registry/schema.ts';
import { resolveServingPaths, servingProblems } from './serving-config.ts';
import { parseYamlFile, type YamlFile } from '../registry/yaml-file.ts';
import { suggest, zodProblems } from '../registry/zod-problems.ts';
import { checkCron } from './schedule.ts';

export type AgentConfig = AgentConfigFile & {
  /** Where the configuration came from, for messages ("agent.yaml", "flags and environment"). */
  origin: string;
  /** The agent.yaml read, as an absolute path (templates must never overwrite it). */
  configPath?: string;
  /** Where each key given was set: the config file's name, `--flag` or `MODELSYNC_*`. */
  sources?: Partial<Record<keyof AgentConfigFile, string>>;
  /** The credentials a `hub` URL carried (http://x:<token>@hub), taken out of it: the token when none is given. */
  hubToken?: string;
};

/**
 * A `hub` URL with credentials in it: Node's fetch refuses such URLs, and its
 * error repeats the URL (secret included) into /status and the logs. The
 * credentials become the token (unless one is given) and the URL loses them.
 */
export function stripHubCredentials<C extends Pick<AgentConfig, 'hub' | 'hubToken'>>(cfg: C): C {
  if (!cfg.hub) return cfg;
  let u: URL;
  try {
    u = new URL(cfg.hub);
  } catch {
    return cfg;
  }
  if (!u.username && !u.password) return cfg;
  const token = u.password ? decodeURIComponent(u.password) : decodeURIComponent(u.username);
  u.username = '';
  u.password = '';
  return { ...cfg, hub: u.toString().replace(/\/$/, ''), hubToken: cfg.hubToken ?? token };
}

/**
 * Why `username` cannot be used with this registry, or undefined. A user name
 * goes with a token; without one it would be taken for the token itself.
 */
export function registryUserProblem(registry: string, haveToken: boolean): string | undefined {
  if (!/^https?:\/\//i.test(registry)) return 'applies to http(s) registries only (a local registry needs no credentials)';
  let u: URL;
  try {
    u = new URL(registry);
  } catch {
    return undefined; // the registry's own check says what is wrong
  }
  if (!haveToken && !u.password) return 'needs a token to go with it: set token_file (or MODELSYNC_TOKEN)';
  return undefined;
}

/**
 * The registry URL carrying the Basic user name (`https://user@host/x.git`):
 * the one place a user name rides along to Git and to same-origin LFS, as it
 * does when the operator writes it into the URL. `username` wins over a user
 * already in the URL; a password in the URL is kept.
 */
export function withRegistryUser(registry: string, username: string | undefined): string {
  if (username === undefined || !/^https?:\/\//i.test(registry)) return registry;
  try {
    const u = new URL(registry);
    u.username = encodeURIComponent(username);
    return u.toString();
  } catch {
    return registry;
  }
}

/** Every key of agent.yaml, the flag and variable that set it, and how a string turns into its value. */
type Kind = 'string' | 'number' | 'boolean' | 'json';
export const AGENT_KEYS: ReadonlyArray<{ key: keyof AgentConfigFile; kind: Kind; path?: boolean; help: string }> = [
  { key: 'site', kind: 'string', help: 'site name (sites/<site>.yaml)' },
  { key: 'registry', kind: 'string', help: 'registry URL or local path' },
  { key: 'branch', kind: 'string', help: 'registry branch (default main)' },
  { key: 'token_file', kind: 'string', path: true, help: 'file holding the hub token (or MODELSYNC_TOKEN)' },
  { key: 'username', kind: 'string', help: 'HTTP Basic user name sent with the token to the registry host (default: the URL\'s, else modelsync)' },
  { key: 'store', kind: 'string', path: true, help: 'the site store' },
  { key: 'config_dir', kind: 'string', path: true, help: 'where templates are rendered' },
  { key: 'listen', kind: 'string', help: 'host:port for /status, /healthz, /metrics and the webhook' },
  { key: 'webhook_secret_file', kind: 'string', path: true, help: 'file holding the webhook HMAC secret' },
  { key: 'hub', kind: 'string', help: 'hub base URL: events and status reports' },
  { key: 'services', kind: 'json', help: 'services as a JSON list (same shape as agent.yaml)' },
  { key: 'serving', kind: 'json', help: 'serving views (OVMS, Triton repositories) as a JSON list (same shape as agent.yaml)' },
  { key: 'schedule', kind: 'string', help: "cron expression overriding the site file's" },
  { key: 'jitter_s', kind: 'number', help: 'random delay before a scheduled pass, at most (default 30)' },
  { key: 'templates', kind: 'boolean', help: 'render the registry templates on this machine (default true)' },
  { key: 'verify_interval_s', kind: 'number', help: 'seconds between re-verifications of active files (0 = off)' },
  { key: 'concurrency', kind: 'number', help: 'parallel downloads (default 8)' },
  { key: 'pass_timeout', kind: 'string', help: 'overall deadline of a pass: seconds, or 90s, 30m, 1h (default 30m)' },
  { key: 'log_level', kind: 'string', help: 'fatal, error, warn, info, debug, trace or silent' },
];

/**
 * Keys inside a block of agent.yaml, as flags and variables with the block's
 * name in front: `verify.allowed_signers` is `--verify-allowed-signers` and
 * `MODELSYNC_VERIFY_ALLOWED_SIGNERS`.
 */
export const NESTED_KEYS: ReadonlyArray<{ parent: 'verify'; key: string; kind: Kind; path?: boolean; help: string }> = [
  { parent: 'verify', key: 'allowed_signers', kind: 'string', path: true, help: "apply only commits signed by these SSH keys (ssh-keygen's allowed_signers format)" },
  { parent: 'verify', key: 'gpg_keys', kind: 'string', path: true, help: 'apply only commits signed by these armored OpenPGP public keys' },
  { parent: 'verify', key: 'mode', kind: 'string', help: 'tip (the new tip) or every (each commit since the last applied one)' },
];

export const flagName = (key: string): string => `--${key.replace(/_/g, '-')}`;
export const envName = (key: string): string => `MODELSYNC_${key.toUpperCase()}`;
/** commander's camelCase option name for a key (`token_file` -> `tokenFile`). */
export const optionName = (key: string): string => key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

export interface LoadConfigInput {
  /** agent.yaml; optional when flags or variables give site, registry and store. */
  file?: string;
  /** Parsed flags, by commander name (`tokenFile`). Undefined entries are ignored. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  cwd: string;
}

type Origin = { kind: 'file' } | { kind: 'flag'; name: string } | { kind: 'env'; name: string };

export async function loadAgentConfig(input: LoadConfigInput): Promise<AgentConfig> {
  const env = input.env ?? {};
  const fileArg = input.file ?? env.MODELSYNC_CONFIG;
  let yf: YamlFile | undefined;
  let fileDir = input.cwd;
  const raw: Record<string, unknown> = {};
  const origins = new Map<string, Origin>();
  const problems: Problem[] = [];

  if (fileArg) {
    const path = resolve(input.cwd, fileArg);
    fileDir = dirname(path);
    let text: string;
    try {
      text = await fsp.readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A file that is not there is a wrong argument (exit 2); one that cannot be read is a site problem (exit 1).
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        const given = input.file !== undefined ? '--config' : 'MODELSYNC_CONFIG';
        throw new UsageError(`${given} ${fileArg}: no such file (${path})`, { file: path });
      }
      throw new ConfigError(`cannot read agent config ${path}: ${errorMessage(err)}`, { file: path });
    }
    yf = parseYamlFile(fileArg, text);
    if (yf.syntaxProblems.length) throw configProblems(yf.syntaxProblems);
    const v = yf.value ?? {};
    if (typeof v !== 'object' || Array.isArray(v)) throw configProblems([yf.problem([], 'agent config must be a mapping of keys to values')]);
    for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
      raw[k] = val;
      origins.set(k, { kind: 'file' });
    }
    // Paths in the file are relative to the file, so a config directory can be moved as a whole.
    for (const { key, path: isPath } of AGENT_KEYS) {
      if (isPath && typeof raw[key] === 'string' && !isAbsolute(raw[key])) raw[key] = resolve(fileDir, raw[key]);
    }
    if (typeof raw.registry === 'string' && looksLikeRelativePath(raw.registry)) raw.registry = resolve(fileDir, raw.registry);
    resolveServingPaths(raw, fileDir);
    for (const { parent, key, path: isPath } of NESTED_KEYS) {
      const block = raw[parent];
      if (isPath && block && typeof block === 'object' && !Array.isArray(block)) {
        const b = block as Record<string, unknown>;
        if (typeof b[key] === 'string' && !isAbsolute(b[key])) b[key] = resolve(fileDir, b[key]);
      }
    }
  }

  const set = (key: string, text: unknown, origin: Origin, kind: Kind, isPath: boolean | undefined): void => {
    let value: unknown = text;
    if (typeof text === 'string') {
      const parsed = convert(text, kind);
      if (!parsed.ok) {
        problems.push(originProblem(origin, parsed.message));
        return;
      }
      value = parsed.value;
      if (isPath && typeof value === 'string') value = resolve(input.cwd, value);
      if (key === 'registry' && typeof value === 'string' && looksLikeRelativePath(value)) value = resolve(input.cwd, value);
    }
    raw[key] = value;
    origins.set(key, origin);
  };
  for (const { key, kind, path } of AGENT_KEYS) {
    const e = env[envName(key)];
    if (e !== undefined && e !== '') set(key, e, { kind: 'env', name: envName(key) }, kind, path);
  }
  for (const { key, kind, path } of AGENT_KEYS) {
    const f = input.flags?.[optionName(key)];
    if (f !== undefined) set(key, typeof f === 'string' ? f : f, { kind: 'flag', name: flagName(key) }, kind, path);
  }
  // A block's keys from flags and variables merge into the block the file gave (flag over variable over file).
  const setNested = (parent: string, key: string, text: string, origin: Origin, kind: Kind, isPath: boolean | undefined): void => {
    const parsed = convert(text, kind);
    if (!parsed.ok) {
      problems.push(originProblem(origin, parsed.message));
      return;
    }
    const value = isPath && typeof parsed.value === 'string' ? resolve(input.cwd, parsed.value) : parsed.value;
    const block = raw[parent] && typeof raw[parent] === 'object' && !Array.isArray(raw[parent]) ? (raw[parent] as Record<string, unknown>) : {};
    raw[parent] = { ...block, [key]: value };
    origins.set(parent, origin);
  };
  for (const { parent, key, kind, path } of NESTED_KEYS) {
    const name = envName(`${parent}_${key}`);
    const e = env[name];
    if (e !== undefined && e !== '') setNested(parent, key, e, { kind: 'env', name }, kind, path);
  }
  for (const { parent, key, kind, path } of NESTED_KEYS) {
    const f = input.flags?.[optionName(`${parent}_${key}`)];
    if (typeof f === 'string') setNested(parent, key, f, { kind: 'flag', name: flagName(`${parent}_${key}`) }, kind, path);
  }
  if (problems.length) throw configProblems(problems);

  const parsed = AgentConfigFile.safeParse(raw);
  if (!parsed.success) {
    const out: Problem[] = [];
    const missing: string[] = [];
    for (const issue of parsed.error.issues) {
      const top = String(issue.path[0] ?? '');
      const origin = origins.get(top);
      if (origin && origin.kind !== 'file') {
        const rest = issue.path.slice(1).map(String).join('.');
        out.push(originProblem(origin, `${rest ? `${rest}: ` : ''}${issue.message}`));
      }
    }
    const fromFile = parsed.error.issues.filter((i) => {
      const top = String(i.path[0] ?? '');
      const o = origins.get(top);
      if (!o && i.path.length === 1 && i.code === 'invalid_type' && raw[top] === undefined) {
        // A required key given nowhere: say every place it could come from.
        const msg = `${top} is required: set it in agent.yaml, with ${flagName(top)} or with ${envName(top)}`;
        missing.push(msg);
        out.push(yf ? yf.problem([], msg) : { file: 'agent config', line: 0, col: 0, path: '', message: msg });
        return false;
      }
      return !o || o.kind === 'file';
    });
    // No file and not enough flags: the command line is incomplete (`modelsync agent` alone), a usage error.
    if (!yf && missing.length > 0) {
      throw new UsageError(
        `agent needs a configuration: give --config <agent.yaml> (or MODELSYNC_CONFIG), or --site, --registry and --store\n${missing.join('\n')}`,
      );
    }
    if (fromFile.length) {
      const where = yf ?? parseYamlFile('agent config (flags and environment)', '{}');
      out.push(...zodProblems(where, { ...parsed.error, issues: fromFile } as typeof parsed.error).map(withSuggestion));
    }
    throw configProblems(out);
  }
  const cfg = parsed.data;
  // Cross-field rules the schema cannot express.
  const extra: Problem[] = [];
  const at = (key: string, message: string): Problem => {
    const o = origins.get(key);
    if (o && o.kind !== 'file') return originProblem(o, message);
    return yf ? yf.problem([key], message) : { file: 'agent config', line: 1, col: 1, path: key, message };
  };
  if (cfg.schedule !== undefined) {
    try {
      checkCron(cfg.schedule);
    } catch (err) {
      extra.push(at('schedule', errorMessage(err).replace(/^schedule: /, '')));
    }
  }
  if (cfg.username !== undefined) {
    const problem = registryUserProblem(cfg.registry, cfg.token_file !== undefined || Boolean(env.MODELSYNC_TOKEN));
    if (problem) extra.push(at('username', problem));
  }
  if (cfg.listen !== undefined && !parseListen(cfg.listen)) extra.push(at('listen', `${JSON.stringify(cfg.listen)} is not host:port (e.g. 127.0.0.1:9470)`));
  const names = new Set<string>();
  cfg.services.forEach((s, i) => {
    if (names.has(s.name)) extra.push(yf && origins.get('services')?.kind === 'file' ? yf.problem(['services', i, 'name'], `duplicate service name ${JSON.stringify(s.name)}`) : at('services', `duplicate service name ${JSON.stringify(s.name)}`));
    names.add(s.name);
  });
  extra.push(...servingProblems(cfg, (path, message) => (yf && origins.get(String(path[0]))?.kind === 'file' ? yf.problem(path, message) : at(String(path[0]), message))));
  if (extra.length) throw configProblems(extra);
  const sources: Partial<Record<keyof AgentConfigFile, string>> = {};
  for (const [key, o] of origins) {
    if (key in cfg) sources[key as keyof AgentConfigFile] = o.kind === 'file' ? fileArg! : o.name;
  }
  return stripHubCredentials({ ...cfg, registry: withRegistryUser(cfg.registry, cfg.username), origin: fileArg ? fileArg : 'flags and environment', sources, ...(fileArg ? { configPath: resolve(input.cwd, fileArg) } : {}) });
}

/** The token: MODELSYNC_TOKEN itself, else the content of token_file. */
export async function readToken(cfg: Pick<AgentConfig, 'token_file'>, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (env.MODELSYNC_TOKEN) return env.MODELSYNC_TOKEN.trim();
  if (!cfg.token_file) return undefined;
  return readSecretFile(cfg.token_file, 'token_file');
}

export async function readSecretFile(path: string, key: string): Promise<string> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    // The path is fine to show; the content never is.
    throw new ConfigError(`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`, { file: path });
  }
  const secret = text.trim();
  if (!secret) throw new ConfigError(`${key}: ${path} is empty`, { file: path });
  return secret;
}

export function parseListen(listen: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(listen.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}

function looksLikeRelativePath(registry: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(registry) && !isAbsolute(registry) && !/^[^/]+@[^:]+:/.test(registry);
}

function convert(text: string, kind: Kind): { ok: true; value: unknown } | { ok: false; message: string } {
  switch (kind) {
    case 'string':
      return { ok: true, value: text };
    case 'number': {
      const n = Number(text);
      return text.trim() !== '' && Number.isFinite(n) ? { ok: true, value: n } : { ok: false, message: `${JSON.stringify(text)} is not a number` };
    }
    case 'boolean':
      if (/^(true|1|yes|on)$/i.test(text)) return { ok: true, value: true };
      if (/^(false|0|no|off)$/i.test(text)) return { ok: true, value: false };
      return { ok: false, message: `${JSON.stringify(text)} is not true or false` };
    case 'json':
      try {
        return { ok: true, value: JSON.parse(text) };
      } catch (err) {
        return { ok: false, message: `not valid JSON: ${errorMessage(err)}` };
      }
  }
}

/** The keys allowed at each level of agent.yaml, for "did you mean" on an unknown key. */
const KEYS_AT: Array<[RegExp, readonly string[]]> = [
  [/^services\[\d+\]\.health\.infer\.expect$/, Object.keys(InferCheck.shape.expect.shape)],
  [/^services\[\d+\]\.health\.infer$/, Object.keys(InferCheck.shape)],
  [/^services\[\d+\]\.health\.metric$/, Object.keys(MetricGateSpec.shape)],
  [/^services\[\d+\]\.health$/, Object.keys(HealthCheck.shape)],
  [/^serving\[\d+\]$/, Object.keys(ServingViewSpec.shape)],
  [/^services\[\d+\]\.reload$/, Object.keys(ServiceSpec.shape.reload.unwrap().shape)],
  [/^services\[\d+\]$/, Object.keys(ServiceSpec.shape)],
  [/^verify$/, Object.keys(VerifySpec.shape)],
  [/^$/, Object.keys(AgentConfigFile.shape)],
];

/**
 * An unknown key with the nearest key of agent.yaml at that level. The
 * registry's problem helper suggests registry keys (`models` for `modles`),
 * which are wrong here: its hint is replaced by one from our own keys.
 */
function withSuggestion(p: Problem): Problem {
  const m = /^unknown key "([^"]*)"/.exec(p.message);
  if (!m) return p;
  const key = m[1]!;
  const parent = p.path.endsWith(key) ? p.path.slice(0, p.path.length - key.length).replace(/\.$/, '') : p.path;
  const keys = KEYS_AT.find(([re]) => re.test(parent))?.[1] ?? [];
  return { ...p, message: `unknown key "${key}"${suggest(key.toLowerCase(), keys)}` };
}

function originProblem(origin: Origin, message: string): Problem {
  const name = origin.kind === 'file' ? 'agent config' : origin.name;
  return { file: name, line: 0, col: 0, path: '', message };
}

function configProblems(problems: Problem[]): ConfigError {
  const lines = problems.map((p) => (p.line === 0 ? `${p.file}: ${p.message}` : formatProblem(p)));
  return new ConfigError(`agent config is invalid:\n${lines.join('\n')}`, { problems });
}
