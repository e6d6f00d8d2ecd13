/** GET /health: is Redis reachable? 200 when it answers PING, 503 when not. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Health, jsonResponse } from './schemas.js';

/** Round-trip check of the Redis connection. */
export type RedisProbe = () => Promise<{ latencyMs: number }>;

export interface HealthRouteOptions {
  readonly probe: RedisProbe;
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRouteOptions> = async (app, { probe }) => {
  app.get(
    '/health',
    {
      config: { access: 'public' },
      schema: {
        operationId: 'getHealth',
        summary: 'Health: is Redis reachable',
        tags: ['health'],
        response: {
          200: jsonResponse('Redis answers.', Health),
          503: jsonResponse('Redis does not answer (the body says why).', Health),
        },
      },
    },
    async (request, reply) => {
      try {
        const { latencyMs } = await probe();
        return reply.code(200).send({ status: 'ok', redis: { reachable: true, latencyMs } });
      } catch (err) {
        request.log.warn({ err }, 'health: Redis unreachable');
        return reply.code(503).send({ status: 'unavailable', redis: { reachable: false, error: (err as Error).message.slice(0, 300) } });
      }
    },
  );
};
