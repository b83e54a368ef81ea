/**
 * The S3 client the hub's object store uses, configured the way the AWS SDK
 * configures itself (credentials and region from the environment, the shared
 * config/credentials files, SSO, IMDS/ECS roles; AWS_ENDPOINT_URL[_S3]) plus
 * what S3-compatible stores need. Only storage/s3.ts imports this file, and
 * only through open.ts's dynamic import.
 */
import { HeadBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { ConfigError, NetworkError } from '../../errors.ts';

export interface S3Settings {
  bucket: string;
  /** "" or "a/b/": every key starts with it. */
  prefix: string;
  /** --s3-endpoint: a MinIO, Ceph RGW, R2 … URL; without it the SDK's own resolution (AWS_ENDPOINT_URL_S3, AWS S3). */
  endpoint?: string;
  /** --s3-path-style / --no-s3-path-style; default on when an endpoint is configured. */
  pathStyle?: boolean;
  /** Static credentials (library use, tests); the SDK's default chain otherwise. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** A region for this store only; the SDK's (AWS_REGION, the profile) otherwise. */
  region?: string;
}

/** The endpoint the SDK will use from the environment, when one is set there. */
export function envEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

/**
 * Build the client and make sure it can work: a region (S3-compatible stores
 * ignore it, so one is assumed when an endpoint is given) and a bucket that
 * answers HeadBucket with these credentials. Fails at start with the reason,
 * rather than on the first upload.
 */
export async function connectS3(s: S3Settings): Promise<{ client: S3Client; endpoint: string | undefined; pathStyle: boolean }> {
  if (s.endpoint !== undefined && !/^https?:\/\/[^\s/]+\/?$/.test(s.endpoint)) {
    throw new ConfigError(`--s3-endpoint must be an http(s) URL of the store without a path (e.g. http://minio.internal:9000), got ${JSON.stringify(s.endpoint)}`);
  }
  const endpoint = s.endpoint ?? envEndpoint();
  const pathStyle = s.pathStyle ?? endpoint !== undefined;
  const base: S3ClientConfig = {
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    ...(s.credentials ? { credentials: s.credentials } : {}),
    ...(s.region ? { region: s.region } : {}),
    forcePathStyle: pathStyle,
    // The SDK's default (CRC32 on every PutObject/UploadPart, aws-chunked
    // bodies with trailers) is refused or mis-stored by several S3-compatible
    // stores; SigV4's signed payload hash and our own sha256 already cover the bytes.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A store that stops answering must not hold an upload (and its socket) for ever.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  };
  let client = new S3Client(base);
  try {
    await client.config.region();
  } catch {
    if (endpoint === undefined) {
      client.destroy();
      throw new ConfigError('--objects s3://…: no AWS region configured; set AWS_REGION (or region in ~/.aws/config for the profile in AWS_PROFILE)');
    }
    // MinIO, Ceph RGW and s3rver accept any region; R2 wants "auto" but takes us-east-1 too.
    client.destroy();
    client = new S3Client({ ...base, region: 'us-east-1' });
  }
  try {
    await client.send(new HeadBucketCommand({ Bucket: s.bucket }));
  } catch (err) {
    client.destroy();
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const where = `s3://${s.bucket}${endpoint ? ` at ${endpoint}` : ''}`;
    if (status === 404) throw new ConfigError(`--objects: bucket ${where} does not exist (create it first; the hub never creates buckets)`);
    if (status === 403 || status === 401) throw new ConfigError(`--objects: access to ${where} denied (${status}); check the credentials and that they may s3:ListBucket on it`);
    throw new NetworkError(`--objects: cannot reach ${where}: ${describeS3Error(err)}`, { status }, err);
  }
  return { client, endpoint, pathStyle };
}

/** An SDK error as a short line: its name, status and message; never a credential (the SDK puts none in these). */
export function describeS3Error(err: unknown): string {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  const msg = e.message && e.message !== 'UnknownError' && e.message !== e.name ? `: ${e.message.slice(0, 300)}` : '';
  return `${e.name ?? 'Error'}${status ? ` (${status})` : ''}${msg}`;
}

export function s3Status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}
