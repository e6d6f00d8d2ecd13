/** Turning what the caller passed into clients, and checking a server is fit for checkpoints. */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { DcpError, DcpValueError } from '../core/errors.js';

export type RedisClient = Redis | Cluster;
/** An ioredis client (single node or Cluster) or a redis:// / rediss:// URL. */
export type RedisInput = RedisClient | string;

const URL_SCHEME = /^rediss?:\/\//;

/** Options for clients this library opens itself. RESP2 keeps replies as plain arrays; Redis 7.0 rejects CLIENT SETINFO. */
export const OWN_CLIENT_OPTIONS: RedisOptions = { disableClientInfo: true, maxRetriesPerRequest: 2 };

export function isRedisClient(value: unknown): value is RedisClient {
  return value instanceof Redis || value instanceof Cluster;
}

/** A client for `input`; `owned` says whether the caller of this function must close it. */
export function connect(input: RedisInput, options: RedisOptions = {}): { client: RedisClient; owned: boolean } {
  if (isRedisClient(input)) return { client: input, owned: false };
  if (typeof input === 'string' && URL_SCHEME.test(input)) {
    const client = new Redis(input, { ...OWN_CLIENT_OPTIONS, ...options });
    client.on('error', () => {}); // surfaced through command rejections; avoid unhandled 'error' events
    return { client, owned: true };
  }
  throw new DcpValueError('INVALID_REDIS', 'redis must be an ioredis Redis or Cluster client or a redis:// / rediss:// URL');
}

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*)@/, (_, scheme: string, auth: string) => `${scheme}${auth.includes(':') ? `${auth.split(':')[0]}:***` : '***'}@`);
}

export interface OpenClientOptions {
  /** How long one connection attempt may take (default 3000 ms). */
  readonly connectTimeoutMs?: number;
  /** Reconnection attempts after the first connection drops (default 0: none, commands fail at once). */
  readonly retries?: number;
}

/**
 * A client for `url` that has connected once, failing fast (no endless reconnecting) when
 * nothing answers: REDIS_UNAVAILABLE naming the redacted URL and the socket error. The
 * caller owns the client. Used by the server's start-up probe and the CLI.
 */
export async function openClient(url: string, { connectTimeoutMs = 3000, retries = 0 }: OpenClientOptions = {}): Promise<Redis> {
  const client = new Redis(url, {
    ...OWN_CLIENT_OPTIONS,
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    maxRetriesPerRequest: retries === 0 ? 0 : 1,
    enableOfflineQueue: retries > 0,
    retryStrategy: (times) => (times > retries ? null : 200),
  });
  let socketError: Error | undefined;
  client.on('error', (err: Error) => {
    socketError ??= err;
  });
  try {
    await client.connect();
    return client;
  } catch (err) {
    client.disconnect();
    // "Connection is closed" says less than the socket error that caused it (ECONNREFUSED...).
    const cause = socketError ?? err;
    throw new DcpError('REDIS_UNAVAILABLE', `cannot reach Redis at ${redactUrl(url)}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

export async function closeClient(client: RedisClient): Promise<void> {
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

export interface ServerCheck {
  readonly version: string;
  readonly maxmemoryPolicy: string | undefined;
  readonly warnings: string[];
}

/**
 * Reachability, version and eviction policy. Evicting a data key silently corrupts a
 * checkpoint, so anything but `noeviction` is a warning the caller must surface.
 */
export async function checkServer(client: RedisClient): Promise<ServerCheck> {
  const node = client instanceof Cluster ? (client.nodes('master')[0] ?? client) : client;
  const info = await (node as Redis).info('server');
  const version = /redis_version:([^\r\n]+)/.exec(info)?.[1] ?? 'unknown';
  const warnings: string[] = [];
  let maxmemoryPolicy: string | undefined;
  try {
    const reply = (await (node as Redis).config('GET', 'maxmemory-policy')) as string[];
    maxmemoryPolicy = reply[1];
  } catch {
    warnings.push('could not read maxmemory-policy (CONFIG disabled?); make sure it is noeviction');
  }
  if (maxmemoryPolicy !== undefined && maxmemoryPolicy !== 'noeviction') {
    warnings.push(`maxmemory-policy is "${maxmemoryPolicy}": Redis may evict checkpoint data and silently corrupt checkpoints; set it to noeviction`);
  }
  const major = Number(version.split('.')[0]);
  if (Number.isFinite(major) && major < 6) warnings.push(`Redis ${version} is older than 6.2, which redis-dcp is tested with`);
  return { version, maxmemoryPolicy, warnings };
}
