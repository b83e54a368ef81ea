/**
 * Schemas of every file modelsync reads. Unknown keys are errors everywhere:
 * a misspelt `curent_version` must fail loudly, not be ignored.
 */
import { z } from 'zod';
import { DURATION_RE, durationMs } from '../util/duration.ts';
import { unsafeRelativePathReason } from '../util/safe-path.ts';

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const VERSION_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;
/** Names the store uses for its own links inside `models/<model>/`. */
export const RESERVED_VERSION_NAMES = new Set(['current', 'previous']);

export const ModelName = z
  .string()
  .regex(NAME_RE, 'must start with a letter or digit and use only letters, digits, "_", "-" and "." (at most 128)');

/** YAML turns `version: 3` into a number; integer versions are accepted and kept as strings. */
export const Version = z
  .union([z.string(), z.int().nonnegative()], { error: 'must be a string (quote it) or a non-negative integer' })
  .transform((v) => String(v))
  .pipe(
    z
      .string()
      .regex(VERSION_RE, 'must start with a letter or digit and use only letters, digits, "_", "-", "+" and "." (at most 128)')
      .refine((v) => !RESERVED_VERSION_NAMES.has(v), { message: '"current" and "previous" are reserved names' }),
  );

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters (a sha256)');

export const RelativePath = z.string().superRefine((p, ctx) => {
  const why = unsafeRelativePathReason(p);
  if (why) ctx.addIssue({ code: 'custom', message: `unsafe path ${JSON.stringify(p)}: ${why}` });
});

export const VersionScheme = z.enum(['date', 'semver', 'integer']);

/** `30m`, `2h`, `1h30m`, `90s`, `1d`: how long a wave soaks (util/duration.ts parseDuration). */
export const SoakDuration = z.string().regex(DURATION_RE, 'must be a duration such as "30s", "30m", "2h" or "1h30m"');

const HttpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/**
 * A metric gate (src/gate/metric-gate.ts): after a switch, a Prometheus
 * instant query watched every `every` for `for`; any series outside
 * [min, max] rolls the switch back. Also a wave's `gate:` in a rollout file.
 */
export const MetricGateSpec = z
  .strictObject({
    /** The Prometheus HTTP API's instant-query endpoint, e.g. http://127.0.0.1:9090/api/v1/query. */
    url: HttpUrl,
    query: z.string().min(1).max(4096),
    min: z.number().refine(Number.isFinite, 'must be a finite number').optional(),
    max: z.number().refine(Number.isFinite, 'must be a finite number').optional(),
    for: SoakDuration.refine((d) => durationMs(d) > 0, 'must be longer than 0'),
    every: SoakDuration.refine((d) => durationMs(d) >= 100, 'must be at least 100ms').default('30s'),
  })
  .refine((g) => g.min !== undefined || g.max !== undefined, { message: 'give min, max or both' })
  .refine((g) => g.min === undefined || g.max === undefined || g.min <= g.max, { message: 'min must not be above max' })
  .refine((g) => durationMs(g.every) <= durationMs(g.for), { message: 'every must not be longer than for' });
export type MetricGateSpec = z.infer<typeof MetricGateSpec>;

// ---- staged rollouts (policy in model_registry.yaml, progress in registry/rollouts/<model>.yaml) ----

/** Which sites a wave adds: `all`, or sites whose labels match every pair, or a stable `percent` of the sites running the model. */
export const WaveSelector = z.union([
  z.literal('all'),
  z
    .strictObject({
      labels: z.record(z.string(), z.string()).optional(),
      percent: z.number().min(1, 'must be between 1 and 100').max(100, 'must be between 1 and 100').optional(),
    })
    .refine((s) => s.labels !== undefined || s.percent !== undefined, { message: 'give labels, percent or both (or write `all`)' }),
], { error: 'must be `all` or a mapping with labels and/or percent' });
export type WaveSelector = z.infer<typeof WaveSelector>;

export const Wave = z.strictObject({
  name: z.string().regex(NAME_RE, 'must be a simple name'),
  sites: WaveSelector,
  /** How long every site of the reached waves must stay Ready on the version before the next wave. */
  soak: SoakDuration.optional(),
  /** A metric gate the controller itself watches from the wave's start (src/gate, the verdict sites use): failing it halts. */
  gate: z.strictObject({ metric: MetricGateSpec }).optional(),
});
export type Wave = z.infer<typeof Wave>;

export const HaltRule = z.strictObject({
  /** Halt when this many sites of the reached waves report Degraded on the version. */
  degraded: z.int().positive().default(1),
});

export const RolloutPolicy = z.strictObject({
  waves: z.array(Wave).min(1, 'a rollout needs at least one wave'),
  halt: HaltRule.default({ degraded: 1 }),
});
export type RolloutPolicy = z.infer<typeof RolloutPolicy>;

export const RolloutStatus = z.enum(['progressing', 'paused', 'halted', 'done']);
export type RolloutStatus = z.infer<typeof RolloutStatus>;

export const RolloutState = z.strictObject({
  /** The last wave reached (waves are cumulative). */
  wave: z.string().min(1),
  /** When that wave was reached (ISO 8601, UTC): soak counts from here or from each site's Ready, whichever is later. */
  since: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 time such as "2026-01-15T10:00:00Z"' }),
  status: RolloutStatus,
  /** Why the rollout halted or was paused, for people reading the file. */
  reason: z.string().optional(),
});
export type RolloutState = z.infer<typeof RolloutState>;

export const RolloutFile = z.strictObject({
  model: ModelName,
  version: Version,
  from: Version,
  waves: z.array(Wave).min(1, 'a rollout needs at least one wave'),
  halt: HaltRule.default({ degraded: 1 }),
  state: RolloutState,
});
export type RolloutFile = z.infer<typeof RolloutFile>;

// ---- maintenance windows (sites/<site>.yaml) ----

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, 'must be a time of day "HH:MM" (00:00 to 24:00)');
const TimeZone = z.string().refine((tz) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, { message: 'must be an IANA time zone such as "Europe/Berlin" or "UTC"' });

export const MaintenanceWindow = z.strictObject({
  /** Days the window starts on; absent = every day. */
  days: z.array(z.enum(WEEKDAYS, { error: `must be one of ${WEEKDAYS.join(', ')}` })).min(1).optional(),
  start: HHMM,
  /** Earlier than start: the window runs past midnight into the next day. */
  end: HHMM,
  tz: TimeZone.default('UTC'),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;
export type VersionScheme = z.infer<typeof VersionScheme>;

// ---- registry/model_registry.yaml ----

export const ModelEntry = z.strictObject({
  current_version: Version,
  previous_version: Version.optional(),
  description: z.string().optional(),
  version_scheme: VersionScheme.optional(),
  /** With a policy, `promote` starts a staged rollout instead of switching every site at once. */
  rollout: RolloutPolicy.optional(),
});
export type ModelEntry = z.infer<typeof ModelEntry>;

export const ModelRegistryFile = z.strictObject({
  // registry/rollouts/ holds rollouts in progress, so no model may be called that.
  models: z.record(ModelName.refine((n) => n !== 'rollouts', { message: '"rollouts" is reserved (registry/rollouts/ holds rollouts in progress)' }), ModelEntry),
});
export type ModelRegistryFile = z.infer<typeof ModelRegistryFile>;

// ---- registry/<model>/<version>/manifest.yaml ----

export const ChunkIndexRef = z.strictObject({
  oid: Sha256,
  size: z.int().nonnegative(),
});

export const ManifestFileEntry = z.strictObject({
  name: RelativePath,
  sha256: Sha256,
  size: z.int().nonnegative(),
  chunks: ChunkIndexRef.optional(),
});
export type ManifestFileEntry = z.infer<typeof ManifestFileEntry>;

export const ManifestFile = z.strictObject({
  name: ModelName,
  version: Version,
  framework: z.string().optional(),
  source: z.string().optional(),
  description: z.string().optional(),
  date_deployed: z.union([z.string(), z.date().transform((d) => d.toISOString().slice(0, 10))]).optional(),
  training_metrics: z.record(z.string(), z.unknown()).optional(),
  files: z.array(ManifestFileEntry).min(1, 'a version needs at least one file'),
  previous_version: Version.optional(),
});
export type ManifestFile = z.infer<typeof ManifestFile>;

// ---- sites/<site>.yaml and sites/groups/<group>.yaml ----

export const TemplateSpec = z.strictObject({
  src: RelativePath,
  dest: RelativePath,
  models: z.array(ModelName).optional(),
});
export type TemplateSpec = z.infer<typeof TemplateSpec>;

/** The bandwidth floor (DESIGN.md, "Safety rules"). */
export const MIN_LIMIT_KBPS = 64;

export const SiteFile = z.strictObject({
  description: z.string().optional(),
  extends: z.array(z.string().min(1)).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  models: z.array(ModelName).optional(),
  overrides: z.record(ModelName, Version).optional(),
  schedule: z.string().optional(),
  retention: z.strictObject({ keep: z.int().nonnegative() }).optional(),
  bandwidth: z.strictObject({ limit_kbps: z.int().min(MIN_LIMIT_KBPS, `must be at least ${MIN_LIMIT_KBPS} (kilobits per second): a slower limit holds the store lock for hours`) }).optional(),
  templates: z.array(TemplateSpec).optional(),
  /** When the site may switch versions; absent = any time. */
  windows: z.array(MaintenanceWindow).optional(),
});
export type SiteFile = z.infer<typeof SiteFile>;

// ---- agent.yaml (local to each site, never from the registry) ----

const Argv = z.array(z.string().min(1)).min(1, 'an argv needs at least the program');

/**
 * An inference smoke test (src/agent/health-infer.ts): a KServe v2 request read
 * from a file on the site (relative to agent.yaml, never from the registry),
 * POSTed to `<url>/v2/models/<model>/infer`; the answer's outputs must have
 * these shapes (-1: any size), and optionally finite values and values within
 * `tolerance` of the expected ones.
 */
export const InferCheck = z.strictObject({
  model: ModelName,
  request: z.string().min(1),
  /** The runtime's REST base URL; default: the `url` of the serving view that lists `model`. */
  url: HttpUrl.optional(),
  expect: z.strictObject({
    outputs: z.record(z.string().min(1), z.array(z.int().min(-1)).max(16)).refine((o) => Object.keys(o).length > 0, 'name at least one output and its shape'),
    finite: z.boolean().default(false),
    /** Expected values, flattened in row-major order; compared within `tolerance`. */
    values: z.record(z.string().min(1), z.array(z.number())).optional(),
    tolerance: z.number().nonnegative().default(1e-4),
  }),
});
export type InferCheck = z.infer<typeof InferCheck>;

/**
 * A model server's repository kept by the agent (src/serving): `<dir>/<model>/<N>/`
 * with N growing on every activation, and the server's own version policy
 * (OVMS config.json, Triton config.pbtxt) pointing at the N to serve.
 */
export const ServingViewSpec = z
  .strictObject({
    kind: z.enum(['ovms', 'triton']),
    /** The repository the agent writes; on the store's filesystem, files are hard links. */
    dir: z.string().min(1),
    models: z.array(ModelName).min(1),
    /** OVMS only: the config.json to keep (default `<dir>/config.json`); other models and keys in it are kept. */
    config: z.string().min(1).optional(),
    /** `dir` as the server sees it (its container's mount point), written into config.json's base_path; default `dir`. */
    runtime_dir: z.string().min(1).optional(),
    /** The server's REST base URL (OVMS --rest_port, Triton --http-port): told to reload/load, then asked for readiness. Without it the view is written and nothing is asked. */
    url: HttpUrl.optional(),
    /** How long the server gets to load a new version and say it is ready. */
    timeout_s: z.number().positive().max(3600).default(60),
    /** version: `/v2/models/<m>/versions/<N>/ready` (that exact N is loaded); model: `/v2/models/<m>/ready`. */
    ready: z.enum(['version', 'model']).default('version'),
    /** Earlier version directories kept besides the served one (the instant fallback is the first of them). */
    keep: z.int().min(1).max(100).default(1),
  })
  .refine((v) => v.kind === 'ovms' || v.config === undefined, { message: 'config is for kind ovms (Triton reads <dir>/<model>/config.pbtxt)', path: ['config'] });
export type ServingViewSpec = z.infer<typeof ServingViewSpec>;

export const HealthCheck = z
  .strictObject({
    command: Argv.optional(),
    http: HttpUrl.optional(),
    infer: InferCheck.optional(),
    metric: MetricGateSpec.optional(),
    timeout_s: z.number().positive().max(3600).default(30),
    /** Tries until the check passes within timeout_s (services take a moment to come up). */
    interval_s: z.number().positive().max(600).default(1),
  })
  .refine((h) => (h.command ? 1 : 0) + (h.http ? 1 : 0) + (h.infer ? 1 : 0) + (h.metric ? 1 : 0) === 1, { message: 'give exactly one of command, http, infer or metric' });

export const ServiceSpec = z
  .strictObject({
    name: z.string().regex(NAME_RE, 'must be a simple name'),
    models: z.array(ModelName).min(1),
    restart: Argv.optional(),
    reload: z.strictObject({ http: HttpUrl, method: z.enum(['POST', 'PUT', 'GET']).default('POST') }).optional(),
    health: HealthCheck.optional(),
  })
  .refine((s) => !(s.restart && s.reload), { message: 'give restart or reload, not both' });
export type ServiceSpec = z.infer<typeof ServiceSpec>;

/** Which registry commits this site applies: only those signed by a key trusted here (src/trust). */
export const VerifySpec = z
  .strictObject({
    /** ssh-keygen's allowed_signers format: principals (matched against the committer e-mail), options, key. */
    allowed_signers: z.string().min(1).optional(),
    /** Armored OpenPGP public keys (`gpg --armor --export`). */
    gpg_keys: z.string().min(1).optional(),
    /** tip: the new tip; every: each commit since the last applied one, merged branches included. */
    mode: z.enum(['tip', 'every']).default('tip'),
  })
  .refine((v) => v.allowed_signers !== undefined || v.gpg_keys !== undefined, 'give allowed_signers, gpg_keys or both: a site that trusts no key would apply nothing');
export type VerifySpec = z.infer<typeof VerifySpec>;

export const AgentConfigFile = z.strictObject({
  site: z.string().regex(NAME_RE, 'must be a site name'),
  registry: z.string().min(1),
  branch: z.string().min(1).default('main'),
  token_file: z.string().optional(),
  /** HTTP Basic user name sent with the token to the registry's origin (Git and same-origin LFS); default the URL's, else `modelsync`. */
  username: z.string().min(1).max(256).regex(/^[^:\s]+$/, 'must not contain ":" or spaces (HTTP Basic)').optional(),
  store: z.string().min(1),
  config_dir: z.string().optional(),
  listen: z.string().optional(),
  webhook_secret_file: z.string().optional(),
  hub: HttpUrl.optional(),
  services: z.array(ServiceSpec).default([]),
  /** Model server repositories the agent keeps (OVMS, Triton); see docs/serving.md. */
  serving: z.array(ServingViewSpec).default([]),
  /** Overrides the site file's schedule (a local decision wins). */
  schedule: z.string().optional(),
  /** Up to this many seconds of random delay before a scheduled pass, so a fleet does not stampede. */
  jitter_s: z.number().nonnegative().max(3600).default(30),
  /** Let the registry's templates be rendered on this machine (they are data, not commands). */
  templates: z.boolean().default(true),
  /** Seconds between low-priority re-verifications of active files (0 = off). */
  verify_interval_s: z.number().nonnegative().default(3600),
  concurrency: z.int().positive().max(64).default(8),
  /**
   * The overall deadline of a pass (seconds, or "30m", "90s", "1h"): after it the pass stops, keeps
   * partial downloads and releases the store lock, so a server that keeps stalling cannot hold a site.
   */
  pass_timeout: z
    .union([z.number().positive(), z.string().regex(DURATION_RE, 'must be a duration: seconds, or numbers with ms, s, m, h or d (e.g. "30m", "1h30m")')])
    .refine((v) => durationMs(v) >= 1000, 'must be at least 1 s')
    .default('30m'),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  verify: VerifySpec.optional(),
});
export type AgentConfigFile = z.infer<typeof AgentConfigFile>;

// ---- hub tokens file ----

export const Role = z.enum(['site', 'publisher', 'admin']);
export type Role = z.infer<typeof Role>;

export const TokensFile = z.strictObject({
  tokens: z.array(
    z.strictObject({
      name: z.string().min(1),
      sha256: Sha256,
      role: Role,
      sites: z.array(z.string().regex(NAME_RE)).optional(),
    }),
  ),
});
export type TokensFile = z.infer<typeof TokensFile>;

/** Every schema by the file it describes, for the generated JSON Schemas. */
export const FILE_SCHEMAS = {
  'model_registry': ModelRegistryFile,
  'manifest': ManifestFile,
  'site': SiteFile,
  'agent': AgentConfigFile,
  'tokens': TokensFile,
  'rollout': RolloutFile,
} as const;
