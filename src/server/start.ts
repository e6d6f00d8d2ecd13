/**
 * Running the admin API as a process (`npm start`, `redis-dcp serve`): check Redis,
 * maybe start a private one, listen, and shut down gracefully on SIGTERM/SIGINT.
 */
import { EXIT_CODES } from '../core/error-codes.js';
import { DcpError } from '../core/errors.js';
import pino, { type Logger } from 'pino';
import { checkServer, closeClient, connect, openClient, redactUrl, type ServerCheck } from '../redis/connection.js';
import { buildApp, type AdminApp } from './app.js';
import type { ServerConfig } from './config.js';
import { findOnPath, startPrivateRedis, type PrivateRedis } from './private-redis.js';


/** The innermost message: the socket error behind a REDIS_UNAVAILABLE. */
function reasonOf(cause: unknown): string {
  const inner = cause instanceof DcpError && cause.cause instanceof Error ? cause.cause : cause;
  return inner instanceof Error ? inner.message : String(inner);
}

/** No Redis answers and none can be started (code REDIS_UNAVAILABLE). */
export class NoRedisError extends DcpError {
  constructor(url: string, cause: unknown) {
    super(
      'REDIS_UNAVAILABLE',
      `Cannot reach Redis at ${redactUrl(url)} (${reasonOf(cause)}).\n` +
        'Get a Redis server and point REDIS_URL at it, for example:\n' +
        '  docker compose up -d redis                 (uses docker-compose.yml, then REDIS_URL=redis://127.0.0.1:6379)\n' +
        '  sudo apt-get install redis-server          (Debian/Ubuntu; then run npm start again)\n' +
        '  REDIS_URL=redis://host:port npm start      (a server you already have)',
      { cause },
    );
  }
}

/** One connection attempt, no retries: is anything answering at `url`, and is it fit for checkpoints? */
export async function probeRedis(url: string, timeoutMs = 2000): Promise<ServerCheck> {
  const client = await openClient(url, { connectTimeoutMs: timeoutMs });
  try {
    return await checkServer(client);
  } finally {
    client.disconnect();
  }
}

export interface RunningServer {
  readonly app: AdminApp;
  /** The address it listens on, e.g. http://127.0.0.1:8080. */
  readonly address: string;
  readonly redisUrl: string;
  /** Set when this process started its own redis-server. */
  readonly privateRedis: PrivateRedis | undefined;
  /** Closes the server, then Redis, then the private redis-server. Idempotent. */
  close(): Promise<void>;
}

export function createLogger(config: Pick<ServerConfig, 'logLevel'>): Logger {
  const pretty = process.stdout.isTTY && process.env.NO_COLOR === undefined;
  return pino({ level: config.logLevel, ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}) });
}

async function resolveRedis(config: ServerConfig, log: Logger): Promise<{ url: string; check: ServerCheck; privateRedis: PrivateRedis | undefined }> {
  try {
    return { url: config.redisUrl, check: await probeRedis(config.redisUrl), privateRedis: undefined };
  } catch (err) {
    const executable = config.redisUrlIsDefault ? findOnPath('redis-server') : undefined;
    if (!executable) throw new NoRedisError(config.redisUrl, err);
    log.warn(`nothing answers at ${config.redisUrl}; starting a PRIVATE redis-server (${executable}) for local use. Its data is DISCARDED when this server stops. Set REDIS_URL to use a real one.`);
    const privateRedis = await startPrivateRedis(executable);
    log.warn({ url: privateRedis.url, pid: privateRedis.pid }, `private redis-server listening at ${privateRedis.url}`);
    return { url: privateRedis.url, check: await probeRedis(privateRedis.url), privateRedis };
  }
}

export async function startServer(config: ServerConfig, log: Logger = createLogger(config)): Promise<RunningServer> {
  const { url, check, privateRedis } = await resolveRedis(config, log);
  log.info({ redisUrl: redactUrl(url), version: check.version, maxmemoryPolicy: check.maxmemoryPolicy }, `Redis ${check.version} reachable`);
  for (const warning of check.warnings) {
    log.warn('!'.repeat(78));
    log.warn(`!!! ${warning}`);
    log.warn('!'.repeat(78));
  }
  if (config.adminToken === undefined) {
    log.warn('ADMIN_TOKEN is not set: the API is OPEN; anyone who can reach it can validate and DELETE checkpoints. Set ADMIN_TOKEN (e.g. openssl rand -hex 32).');
  }

  const { client } = connect(url);
  let app: AdminApp;
  try {
    app = await buildApp({
      redis: client,
      prefix: config.prefix,
      ...(config.adminToken !== undefined ? { adminToken: config.adminToken } : {}),
      adminTokenReads: config.adminTokenReads,
      recycleTtlMs: config.recycleTtlMs,
      logger: log,
    });
  } catch (err) {
    await closeClient(client);
    await privateRedis?.stop();
    throw err;
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app.close();
      await closeClient(client);
      await privateRedis?.stop();
    })());

  let address: string;
  try {
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    await close();
    throw err;
  }
  log.info({ address, docs: `${address}/docs`, prefix: config.prefix, auth: config.adminToken ? (config.adminTokenReads ? 'all routes' : 'validate and delete') : 'none' }, `redis-dcp admin API listening at ${address} (Swagger UI at ${address}/docs)`);
  return { app, address, redisUrl: url, privateRedis, close };
}

/** SIGTERM/SIGINT: close the server, then Redis; a second signal exits at once. */
export function closeOnSignals(server: RunningServer, log: Logger, exit: (code: number) => void = (code) => process.exit(code)): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting without waiting`);
      exit(EXIT_CODES.failure);
      return;
    }
    stopping = true;
    log.info(`${signal}: shutting down (closing the server, then Redis)`);
    server.close().then(
      () => {
        log.info('shut down cleanly');
        exit(EXIT_CODES.ok);
      },
      (err: unknown) => {
        log.error({ err }, 'error during shutdown');
        exit(EXIT_CODES.failure);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

export { redactUrl };
