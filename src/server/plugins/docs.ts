/**
 * The OpenAPI 3.1 document (built by @fastify/swagger from the route schemas) and
 * Swagger UI: UI at /docs, the document at /docs/json and /docs/yaml.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { BEARER_SCHEME } from './auth.js';

export const DOCS_PREFIX = '/docs';
export const API_VERSION = '0.1.0';

async function docsPlugin(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    // Shared schemas appear under components/schemas by their $id.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'redis-dcp admin API',
        version: API_VERSION,
        description:
          'Operate PyTorch-DCP checkpoints stored in Redis: list, inspect, validate, delete.\n\n' +
          'Checkpoint ids containing "/" go into paths percent-encoded (run1%2Fstep-100). ' +
          'Errors are application/problem+json bodies `{ statusCode, code, error, message }`.\n\n' +
          'When the server runs with ADMIN_TOKEN, validate, delete and gc need `Authorization: Bearer <token>` ' +
          '(401 without it, 403 with a wrong one, 429 after too many failures); reads need it too when ADMIN_TOKEN_READS=1.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      tags: [
        { name: 'checkpoints', description: 'Checkpoints in the catalog' },
        { name: 'health', description: 'Liveness and Redis reachability' },
        { name: 'operations', description: 'Garbage collection and memory usage' },
        { name: 'monitoring', description: 'Prometheus metrics' },
      ],
      components: {
        securitySchemes: {
          [BEARER_SCHEME]: { type: 'http', scheme: 'bearer', description: 'The ADMIN_TOKEN the server was started with.' },
        },
      },
    },
  });
  await app.register(swaggerUi, {
    routePrefix: DOCS_PREFIX,
    staticCSP: false,
    uiConfig: { deepLinking: true, docExpansion: 'list', validatorUrl: null, tryItOutEnabled: false },
  });
}

export default fp(docsPlugin, { name: 'redis-dcp-docs', fastify: '5.x' });
