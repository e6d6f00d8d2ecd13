/**
 * Turning any error into the API's problem body `{ statusCode, code, error, message }`.
 * The status of a code comes from the one table (src/core/error-codes.ts); Redis client
 * errors are translated by the Redis backend (fromRedisError); only real bugs are 500,
 * and their details stay in the log, never in the answer.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifySchemaValidationError } from 'fastify';
import { ERROR_CODES, type ErrorCode } from '../core/error-codes.js';
import { DcpError } from '../core/errors.js';
import { fromRedisError } from '../redis/errors.js';
import type { ProblemBody } from '../../routes/schemas.js';

/** The problem body of a code, with the status the table gives it. */
export function problemBody(code: ErrorCode, message: string): ProblemBody {
  const statusCode = ERROR_CODES[code].status;
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message };
}

/** Fastify's own 4xx codes, as codes of the table. */
const FASTIFY_CODES: Readonly<Record<number, ErrorCode>> = {
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URL_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  431: 'HEADERS_TOO_LARGE',
};

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
  const translated = fromRedisError(err);
  if (translated instanceof DcpError) return { body: problemBody(translated.code, translated.message), internal: false };
  const status = statusOf(err);
  // Fastify's own 4xx (bad JSON, wrong content type, body too large...): the status's code, Fastify's message.
  if (status !== undefined && status < 500) {
    const validation = (err as { code?: unknown }).code === 'FST_ERR_VALIDATION';
    const code: ErrorCode = validation ? 'INVALID_PARAMETER' : (FASTIFY_CODES[status] ?? 'BAD_REQUEST');
    const body = problemBody(code, err instanceof Error ? err.message : 'bad request');
    return { body: { ...body, statusCode: status, error: STATUS_CODES[status] ?? 'Error' }, internal: false };
  }
  if (status === 503) return { body: problemBody('SERVICE_UNAVAILABLE', err instanceof Error ? err.message : 'service unavailable'), internal: false };
  return { body: problemBody('INTERNAL_ERROR', `Internal error; the server log has the details (request id ${requestId})`), internal: true };
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
  return new Error(texts.join('; ')); // Fastify marks it FST_ERR_VALIDATION; classifyError answers INVALID_PARAMETER
}
