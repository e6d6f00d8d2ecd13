/**
 * Turning any error into the API's problem body `{ statusCode, code, error, message }`.
 * Bad input is 4xx and says which rule failed; tampered stored data is 422 (the request
 * was fine, the checkpoint is not); Redis down is 503; only real bugs are 500, and
 * their details stay in the log, never in the answer.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifySchemaValidationError } from 'fastify';
import { DcpError } from '../core/errors.js';
import type { ProblemBody } from '../../routes/schemas.js';

/** HTTP status of each library error code that can reach a route. */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  INVALID_CHECKPOINT_ID: 400,
  INVALID_CURSOR: 400,
  INVALID_LIMIT: 400,
  CHECKPOINT_NOT_FOUND: 404,
  CHECKPOINT_LOCKED: 409,
  CHECKPOINT_NOT_COMMITTED: 409,
  FENCED: 409,
  METADATA_INVALID: 422,
  CHECKSUM_MISMATCH: 422,
  DATA_MISSING: 422,
  STORED_DATA_INVALID: 422,
  LOCK_UNAVAILABLE: 503,
  REDIS_UNAVAILABLE: 503,
};

/** An error the API raises itself with a chosen status and code. */
export class HttpProblem extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpProblem';
  }
}

export function problemBody(statusCode: number, code: string, message: string): ProblemBody {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);

/** ioredis' ways of saying "no server": retries exhausted, closed connection, socket errors. */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as Error & { code?: unknown }).code;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Stream isn't writeable|connect ECONNREFUSED|Reached the max retries|LOADING|MASTERDOWN|CLUSTERDOWN/.test(err.message) ||
    (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code))
  );
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : undefined;
}

export interface ClassifiedError {
  readonly body: ProblemBody;
  /** True for unexpected errors: log them with their stack. */
  readonly internal: boolean;
}

export function classifyError(err: unknown, requestId: string): ClassifiedError {
  if (err instanceof HttpProblem) return { body: problemBody(err.statusCode, err.code, err.message), internal: false };
  if (err instanceof DcpError) {
    const status = STATUS_BY_CODE[err.code];
    if (status !== undefined) return { body: problemBody(status, err.code, err.message), internal: false };
  }
  if (isRedisUnavailable(err)) return { body: problemBody(503, 'REDIS_UNAVAILABLE', 'Redis is not reachable; try again later'), internal: false };
  if (err instanceof Error && err.name === 'ReplyError' && /^WRONGTYPE/.test(err.message)) {
    return { body: problemBody(422, 'STORED_DATA_INVALID', 'A key of this checkpoint holds the wrong Redis type (tampered with outside redis-dcp)'), internal: false };
  }
  const status = statusOf(err);
  // Fastify's own 4xx (bad JSON, wrong content type, body too large...) keep status and code.
  if (status !== undefined && status < 500) {
    const fastifyCode = (err as { code?: unknown }).code;
    const code = fastifyCode === 'FST_ERR_VALIDATION' ? 'INVALID_PARAMETER' : typeof fastifyCode === 'string' ? fastifyCode : 'BAD_REQUEST';
    const message = err instanceof Error ? err.message : 'bad request';
    return { body: problemBody(status, code, message), internal: false };
  }
  if (status === 503) return { body: problemBody(503, 'SERVICE_UNAVAILABLE', err instanceof Error ? err.message : 'service unavailable'), internal: false };
  return { body: problemBody(500, 'INTERNAL_ERROR', `Internal error; the server log has the details (request id ${requestId})`), internal: true };
}

/**
 * Messages for schema validation failures that name the parameter and the rule,
 * e.g. `querystring parameter "limit" must be <= 1000`.
 */
export function formatValidationErrors(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const part = dataVar === 'params' ? 'path parameter' : dataVar === 'querystring' ? 'query parameter' : dataVar;
  const texts = errors.map((e) => {
    const params = e.params as Record<string, unknown>;
    if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      return `unknown ${part} ${JSON.stringify(params.additionalProperty.slice(0, 100))}`;
    }
    if (e.keyword === 'required' && typeof params.missingProperty === 'string') return `${part} ${JSON.stringify(params.missingProperty)} is required`;
    const name = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    return `${part}${name ? ` ${JSON.stringify(name)}` : ''} ${e.message ?? 'is invalid'}`;
  });
  return new Error(texts.join('; '));
}
