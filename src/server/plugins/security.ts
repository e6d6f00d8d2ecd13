/**
 * Security headers (helmet's). The content security policy admits scripts from the server
 * itself (and by hash the inline scripts @fastify/swagger-ui lists in `swaggerCSP`, none in its
 * current version) and nothing from elsewhere; it does not upgrade requests to https, because
 * the API is usually served over plain HTTP on a private network. The configuration is fixed
 * (no nonces), so helmet runs once at start-up and every answer gets the headers it set: the
 * per-request plugin rebuilt helmet's middleware for each request (docs/performance.md, Session 7).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';

/** The headers helmet's middleware sets for `options` (it sets fixed values for a fixed configuration). */
export function helmetHeaders(options: Readonly<HelmetOptions>): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => {
    if (err) throw err;
  });
  return Object.freeze(headers);
}

async function securityPlugin(app: FastifyInstance): Promise<void> {
  const swaggerCSP = (app as FastifyInstance & { swaggerCSP?: { script: string[] } }).swaggerCSP ?? { script: [] };
  const headers = helmetHeaders({
    contentSecurityPolicy: {
      useDefaults: true,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'", ...swaggerCSP.script],
        // Swagger UI sets inline styles at run time, which no hash can cover. (Listing hashes here
        // would make browsers ignore 'unsafe-inline'.) Scripts stay hash-only.
        'style-src': ["'self'", "'unsafe-inline'"],
        'img-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'form-action': ["'self'"],
        'upgrade-insecure-requests': null,
      },
    },
  });
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers);
    done();
  });
}

export default fp(securityPlugin, { name: 'redis-dcp-security', fastify: '5.x', dependencies: ['redis-dcp-docs'] });
