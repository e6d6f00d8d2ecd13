/**
 * Bearer-token auth for the admin API. Routes say what they are with `config.access`:
 * "admin" routes (delete, validate) need the token whenever one is configured; "read"
 * routes only when reads are protected too; "public" routes (health, docs) never.
 * Failed attempts are rate limited per client address so the token cannot be guessed
 * at line speed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { DcpError } from '../../core/errors.js';
import { BEARER_SCHEME } from '../../../routes/schemas.js';

export type RouteAccess = 'public' | 'read' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route (default "public"). */
    access?: RouteAccess;
  }
}

export { BEARER_SCHEME };

export interface AuthFailureLimit {
  /** Failed attempts allowed per client address in each window. */
  readonly max: number;
  readonly timeWindowMs: number;
}

export const DEFAULT_AUTH_FAILURE_LIMIT: AuthFailureLimit = { max: 30, timeWindowMs: 60_000 };

export interface AuthOptions {
  readonly adminToken: string | undefined;
  readonly protectReads: boolean;
  readonly failureLimit: AuthFailureLimit;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Compares in time independent of where the strings differ and of their lengths:
 * both sides are hashed to 32 bytes first, then compared with timingSafeEqual.
 */
export function tokensEqual(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

type Verdict = { ok: true } | { ok: false; status: 401 | 403; message: string };

async function authPlugin(app: FastifyInstance, options: AuthOptions): Promise<void> {
  const { adminToken, protectReads } = options;

  const needsToken = (request: FastifyRequest): boolean => {
    if (adminToken === undefined) return false;
    const access = request.routeOptions.config.access ?? 'public';
    return access === 'admin' || (access === 'read' && protectReads);
  };

  const verdict = (request: FastifyRequest): Verdict => {
    if (!needsToken(request)) return { ok: true };
    const header = request.headers.authorization;
    if (typeof header !== 'string' || header.length === 0) return { ok: false, status: 401, message: 'This operation needs "Authorization: Bearer <ADMIN_TOKEN>"' };
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!match) return { ok: false, status: 401, message: 'The Authorization header must have the form "Bearer <token>"' };
    if (!tokensEqual(match[1]!, adminToken!)) return { ok: false, status: 403, message: 'The bearer token is not the admin token' };
    return { ok: true };
  };

  // Only requests that are about to fail auth count against the limit: everything
  // else is on the allow list, so honest traffic is never throttled.
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    max: options.failureLimit.max,
    timeWindow: options.failureLimit.timeWindowMs,
    allowList: (request) => verdict(request).ok,
    errorResponseBuilder: (_request, context) =>
      new DcpError('TOO_MANY_AUTH_FAILURES', `Too many failed authentications from this address; retry in ${context.after}`),
  });

  // preParsing: after the rate limiter's onRequest hook (route-level hooks run after
  // instance-level ones of the same kind) and before any body is read.
  app.addHook('preParsing', async (request, reply) => {
    const result = verdict(request);
    if (result.ok) return;
    if (result.status === 401) reply.header('www-authenticate', 'Bearer realm="redis-dcp"');
    throw new DcpError(result.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', result.message);
  });
}

export default fp(authPlugin, { name: 'redis-dcp-auth', fastify: '5.x' });
