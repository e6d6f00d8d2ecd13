/**
 * Every error answer, whatever raised it (a route, a hook, validation, the router, an
 * unknown URL), is an application/problem+json body of the documented shape.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { PROBLEM_CONTENT_TYPE, SHARED_SCHEMAS, type ProblemBody } from '../../../routes/schemas.js';
import { classifyError, problemBody } from '../error-answers.js';

export function sendProblem(reply: FastifyReply, body: ProblemBody): FastifyReply {
  return reply.code(body.statusCode).type(PROBLEM_CONTENT_TYPE).send(body);
}

export function handleError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { body, internal } = classifyError(error, request.id);
  if (internal) request.log.error({ err: error }, 'request failed');
  else if (body.statusCode >= 500) request.log.warn({ code: body.code, message: (error as Error)?.message }, 'request failed');
  else request.log.info({ code: body.code, statusCode: body.statusCode }, body.message);
  return sendProblem(reply, body);
}

async function problemsPlugin(app: FastifyInstance): Promise<void> {
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  app.setErrorHandler((error, request, reply) => handleError(error, request, reply));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!.slice(0, 200);
    return sendProblem(reply, problemBody('ROUTE_NOT_FOUND', `No route ${request.method} ${path} (checkpoint ids containing "/" must be percent-encoded as %2F)`));
  });
}

export default fp(problemsPlugin, { name: 'redis-dcp-problems', fastify: '5.x' });
