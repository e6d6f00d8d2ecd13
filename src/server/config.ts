/**
 * Server configuration from the environment. Every variable is validated at start so a
 * typo fails loudly instead of running with a surprising default.
 */
import { DcpError } from '../core/errors.js';
import { assertValidPrefix } from '../redis/checkpoint-id.js';
import { DEFAULT_PREFIX } from '../redis/keys.js';

/** The environment variables the server reads (docker-compose.yml is checked against this list). */
export const CONFIG_ENV = ['REDIS_URL', 'DCP_PREFIX', 'HOST', 'PORT', 'ADMIN_TOKEN', 'ADMIN_TOKEN_READS', 'LOG_LEVEL', 'DCP_RECYCLE_TTL_MS'] as const;
export type ConfigEnvName = (typeof CONFIG_ENV)[number];

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
export const ADMIN_TOKEN_MIN_LENGTH = 16;
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServerConfig {
  readonly redisUrl: string;
  /** True when REDIS_URL was not set (main may then start a private redis-server). */
  readonly redisUrlIsDefault: boolean;
  readonly prefix: string;
  readonly host: string;
  readonly port: number;
  readonly adminToken: string | undefined;
  readonly adminTokenReads: boolean;
  readonly logLevel: LogLevel;
  /** Segment recycling of deleted checkpoints (0 = off), see CheckpointCatalogOptions.recycleTtlMs. */
  readonly recycleTtlMs: number;
}

/** Every problem of the configuration at once (code CONFIG_INVALID). */
export class ConfigError extends DcpError {
  constructor(readonly problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

/** Why `token` is not acceptable as an admin token, or undefined. */
export function adminTokenProblem(token: string): string | undefined {
  if (token.length < ADMIN_TOKEN_MIN_LENGTH) return `must be at least ${ADMIN_TOKEN_MIN_LENGTH} characters (generate one with: openssl rand -hex 32)`;
  if (token.length > 1024) return 'must be at most 1024 characters';
  // It travels in an Authorization header: visible ASCII only, no spaces.
  if (!/^[\x21-\x7e]+$/.test(token)) return 'may contain only visible ASCII characters (no spaces)';
  return undefined;
}

function parseBoolean(name: string, raw: string | undefined, problems: string[]): boolean {
  if (raw === undefined || raw === '') return false;
  if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
  problems.push(`${name} must be 1/0, true/false, yes/no or on/off, got ${JSON.stringify(raw)}`);
  return false;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads and validates the configuration; throws ConfigError listing every problem at once. */
export function loadConfig(env: Env = process.env): ServerConfig {
  const problems: string[] = [];
  const value = (name: ConfigEnvName): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };

  const redisUrl = value('REDIS_URL') ?? DEFAULT_REDIS_URL;
  if (!/^rediss?:\/\/[^\s]+$/.test(redisUrl)) problems.push(`REDIS_URL must be a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`);

  const prefix = value('DCP_PREFIX') ?? DEFAULT_PREFIX;
  try {
    assertValidPrefix(prefix);
  } catch (err) {
    problems.push(`DCP_PREFIX: ${(err as Error).message}`);
  }

  const host = value('HOST') ?? DEFAULT_HOST;
  if (!/^[A-Za-z0-9.:_\-[\]]+$/.test(host)) problems.push(`HOST must be a host name or IP address, got ${JSON.stringify(host)}`);

  const portText = value('PORT');
  const port = portText === undefined ? DEFAULT_PORT : Number(portText);
  if (!/^\d+$/.test(portText ?? '0') || !Number.isInteger(port) || port < 0 || port > 65535) problems.push(`PORT must be an integer from 0 to 65535, got ${JSON.stringify(portText)}`);

  const adminToken = value('ADMIN_TOKEN');
  if (adminToken !== undefined) {
    const problem = adminTokenProblem(adminToken);
    if (problem) problems.push(`ADMIN_TOKEN ${problem}`);
  }
  const adminTokenReads = parseBoolean('ADMIN_TOKEN_READS', value('ADMIN_TOKEN_READS'), problems);
  if (adminTokenReads && adminToken === undefined) problems.push('ADMIN_TOKEN_READS is set but ADMIN_TOKEN is not: there is no token to require');

  const logLevel = (value('LOG_LEVEL') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);

  const recycleText = value('DCP_RECYCLE_TTL_MS');
  const recycleTtlMs = recycleText === undefined ? 0 : Number(recycleText);
  if (!/^\d+$/.test(recycleText ?? '0') || !Number.isSafeInteger(recycleTtlMs)) problems.push(`DCP_RECYCLE_TTL_MS must be a whole number of milliseconds (0 = off), got ${JSON.stringify(recycleText)}`);

  if (problems.length > 0) throw new ConfigError(problems);
  return { redisUrl, redisUrlIsDefault: value('REDIS_URL') === undefined, prefix, host, port, adminToken, adminTokenReads, logLevel, recycleTtlMs };
}
