/** GET /metrics: Prometheus text exposition (README "Metrics"); a read, so ADMIN_TOKEN_READS protects it. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BEARER_SCHEME, problemResponse } from './schemas.js';

export interface MetricsRouteOptions {
  /** Renders the metrics (reads the catalog's usage first). */
  readonly scrape: () => Promise<{ contentType: string; body: string }>;
}

export const metricsRoutes: FastifyPluginAsyncTypebox<MetricsRouteOptions> = async (app, { scrape }) => {
  app.get(
    '/metrics',
    {
      config: { access: 'read' },
      schema: {
        operationId: 'getMetrics',
        summary: 'Prometheus metrics: checkpoints by state, bytes, Redis memory, request durations, process metrics',
        tags: ['monitoring'],
        security: [{}, { [BEARER_SCHEME]: [] }],
        response: {
          200: { description: 'Prometheus text exposition format 0.0.4.', content: { 'text/plain': { schema: { type: 'string' } } } },
          401: problemResponse('No bearer token (only when the server protects reads).'),
          403: problemResponse('Wrong bearer token.'),
          429: problemResponse('Too many failed authentications from this address.'),
          500: problemResponse('Unexpected server error; details are in the server log under the request id.'),
          503: problemResponse('Redis is not reachable.'),
        },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await scrape();
      return reply.type(contentType).send(body);
    },
  );
};
