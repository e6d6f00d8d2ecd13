/**
 * buildApp: the admin API as a Fastify instance, for `npm start`, the CLI's `serve`,
 * tests and embedding. The Redis connection is lazy, so the app (and its OpenAPI
 * document) can be built without a server.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { checkpointRoutes } from '../../routes/checkpoints.js';
import { PROBLEM_CONTENT_TYPE } from '../../routes/schemas.js';
import { healthRoutes } from '../../routes/health.js';
import { operationRoutes } from '../../routes/operations.js';
import { metricsRoutes } from '../../routes/metrics.js';
import { dashboardRoutes } from '../../routes/dashboard.js';
import { CheckpointCatalog } from '../redis/catalog.js';
import { closeClient, connect, type RedisClient, type RedisInput } from '../redis/connection.js';
import { withDeadline } from '../redis/deadline.js';
import { adminTokenProblem } from './config.js';
import authPlugin, { DEFAULT_AUTH_FAILURE_LIMIT, type AuthFailureLimit } from './plugins/auth.js';
import docsPlugin from './plugins/docs.js';
import { AdminMetrics } from './metrics.js';
import problemsPlugin, { sendProblem } from './plugins/problems.js';
import securityPlugin from './plugins/security.js';
import { DcpError, DcpValueError } from '../core/errors.js';
import { classifyError, formatValidationErrors, problemBody } from './error-answers.js';

export interface BuildAppOptions {
  /** An ioredis client (not closed by the app) or a redis:// URL (the app opens and closes its client). */
  readonly redis: RedisInput;
  /** Key prefix of the checkpoints (default "dcp"). */
  readonly prefix?: string;
  /** When set, validate and delete need `Authorization: Bearer <adminToken>`. */
  readonly adminToken?: string;
  /** With adminToken: reads need the token too. */
  readonly adminTokenReads?: boolean;
  /** A pino logger, Fastify/pino logger options, or false (default) for none. */
  readonly logger?: FastifyServerOptions['logger'] | FastifyBaseLogger;
  /** Failed authentications allowed per client address and window (default 30 per minute). */
  readonly authFailureLimit?: AuthFailureLimit;
  /** Independent Redis nodes for the Redlock quorum of delete (default: the data Redis). */
  readonly lockRedis?: readonly RedisInput[];
  /** How long GET /health waits for PING (default 2000 ms). */
  readonly healthTimeoutMs?: number;
  /** Segment recycling for deletes (default 0 = off): see CheckpointCatalogOptions.recycleTtlMs. */
  readonly recycleTtlMs?: number;
}

export type AdminApp = FastifyInstance<Server, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

/** Longest accepted request URL: a 512-character id fully percent-encoded fits easily. */
export const MAX_URL_LENGTH = 4096;
/** Only POST /gc takes a (small) body; anything bigger than this is refused before it is read. */
export const BODY_LIMIT_BYTES = 16 * 1024;

export async function buildApp(options: BuildAppOptions): Promise<AdminApp> {
  if (options.adminToken !== undefined) {
    const problem = adminTokenProblem(options.adminToken);
    if (problem) throw new DcpValueError('CONFIG_INVALID', `adminToken ${problem}`);
  }
  if (options.adminTokenReads && options.adminToken === undefined) throw new DcpValueError('CONFIG_INVALID', 'adminTokenReads needs an adminToken');

  // lazyConnect: building the app (e.g. to print its OpenAPI document) needs no Redis.
  const { client, owned } = connect(options.redis, { lazyConnect: true });
  let catalog: CheckpointCatalog;
  try {
    catalog = new CheckpointCatalog({ redis: client, ...(options.prefix !== undefined ? { prefix: options.prefix } : {}), ...(options.lockRedis ? { lockRedis: options.lockRedis } : {}), ...(options.recycleTtlMs !== undefined ? { recycleTtlMs: options.recycleTtlMs } : {}) });
  } catch (err) {
    if (owned) client.disconnect();
    throw err;
  }

  const app: AdminApp = Fastify({
    ...loggerOptions(options.logger),
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: MAX_URL_LENGTH },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
    schemaErrorFormatter: formatValidationErrors,
    // Router-level failures (malformed percent-encoding) get the problem shape too.
    frameworkErrors: (error, request, reply) => {
      request.log.info({ code: error.code }, error.message);
      if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
        sendProblem(reply, problemBody('URL_TOO_LONG', `The request URL is longer than ${MAX_URL_LENGTH} characters`));
        return;
      }
      sendProblem(reply, classifyError(error, request.id).body);
    },
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.addHook('onClose', async () => {
    await catalog.close();
    if (owned) await closeClient(client);
  });

  app.addHook('onRequest', async (request) => {
    if (request.url.length > MAX_URL_LENGTH) throw new DcpError('URL_TOO_LONG', `The request URL is longer than ${MAX_URL_LENGTH} characters`);
  });

  try {
    await app.register(problemsPlugin);
    await app.register(authPlugin, {
      adminToken: options.adminToken,
      protectReads: options.adminTokenReads ?? false,
      failureLimit: options.authFailureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT,
    });
    await app.register(docsPlugin);
    await app.register(securityPlugin);

    const healthTimeoutMs = options.healthTimeoutMs ?? 2000;
    const probe = async () => {
      const started = performance.now();
      await withDeadline(pingAny(client), healthTimeoutMs, () => new DcpError('REDIS_UNAVAILABLE', `Redis PING did not answer within ${healthTimeoutMs} ms`));
      return { latencyMs: Math.round((performance.now() - started) * 1000) / 1000 };
    };
    await app.register(healthRoutes, { probe });
    await app.register(checkpointRoutes, { catalog });
    await app.register(operationRoutes, { catalog });
    const metrics = new AdminMetrics(() => catalog.usage());
    app.addHook('onResponse', async (request, reply) => metrics.observeRequest(request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000));
    await app.register(metricsRoutes, { scrape: () => metrics.scrape() });
    await app.register(dashboardRoutes, { assets: new URL('./dashboard/', import.meta.url) });
  } catch (err) {
    // A plugin failed to register: release what was opened, then report.
    await app.close().catch(() => undefined);
    if (owned) client.disconnect();
    throw err;
  }
  return app;
}

/**
 * Requests Node's HTTP parser rejects (malformed request line or headers, headers too
 * large, timeouts) never reach Fastify's handlers: answer them with a problem body too.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? problemBody('HEADERS_TOO_LARGE', 'The request headers are too large')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? problemBody('REQUEST_TIMEOUT', 'The request was not received in time')
        : problemBody('MALFORMED_REQUEST', 'The request is not valid HTTP');
  const body = JSON.stringify(problem);
  const head = `HTTP/1.1 ${problem.statusCode} ${STATUS_CODES[problem.statusCode]}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
  if (socket.writable) socket.end(head + body);
  else socket.destroy(error);
}

function isLoggerInstance(value: unknown): value is FastifyBaseLogger {
  return typeof value === 'object' && value !== null && typeof (value as FastifyBaseLogger).info === 'function' && typeof (value as FastifyBaseLogger).child === 'function';
}

function loggerOptions(logger: BuildAppOptions['logger']): Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> {
  if (isLoggerInstance(logger)) return { loggerInstance: logger };
  return { logger: logger ?? false };
}

async function pingAny(client: RedisClient): Promise<void> {
  const reply = await client.ping();
  if (reply !== 'PONG') throw new DcpError('REDIS_ERROR', `PING answered ${String(reply)}`);
}
