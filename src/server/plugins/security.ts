/**
 * Security headers (@fastify/helmet). The content security policy admits Swagger UI's
 * own inline script by hash and nothing from elsewhere; it does not upgrade
 * requests to https, because the API is usually served over plain HTTP on a private network.
 */
import helmet from '@fastify/helmet';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

async function securityPlugin(app: FastifyInstance): Promise<void> {
  const swaggerCSP = (app as FastifyInstance & { swaggerCSP?: { script: string[] } }).swaggerCSP ?? { script: [] };
  await app.register(helmet, {
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
}

export default fp(securityPlugin, { name: 'redis-dcp-security', fastify: '5.x', dependencies: ['redis-dcp-docs'] });
