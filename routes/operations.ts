/**
 * Operator routes: POST /gc (collect old incomplete checkpoints) and GET /usage (what
 * checkpoints hold in Redis). Schema plus one catalog call each; see README "Operators".
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { CheckpointCatalog } from '../src/redis/catalog.js';
import { CheckpointIdPrefix, GcResult, UsageReport } from '../src/redis/catalog-schemas.js';
import { BEARER_SCHEME, jsonResponse, problemResponse, ref } from './schemas.js';

export type OperationsService = Pick<CheckpointCatalog, 'gc' | 'usage'>;

export const GcBody = Type.Object(
  {
    prefix: Type.Optional(CheckpointIdPrefix),
    incompleteOlderThanMs: Type.Optional(Type.Integer({ minimum: 0, description: 'Collect incomplete checkpoints whose last save began at least this long ago (default 600000, 10 min).' })),
    dryRun: Type.Optional(Type.Boolean({ default: false, description: 'Report what would be deleted; delete nothing.' })),
  },
  { additionalProperties: false },
);

export const UsageQuery = Type.Object(
  {
    prefix: Type.Optional(CheckpointIdPrefix),
    top: Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'How many run prefixes to list, largest first.' }),
  },
  { additionalProperties: false },
);

const common = {
  400: problemResponse('Invalid parameter; the message names the rule that failed.'),
  401: problemResponse('No bearer token (only when the server protects this operation).'),
  403: problemResponse('Wrong bearer token.'),
  429: problemResponse('Too many failed authentications from this address.'),
  500: problemResponse('Unexpected server error; details are in the server log under the request id.'),
  503: problemResponse('Redis (or the lock quorum) is not reachable.'),
};

export const operationRoutes: FastifyPluginAsyncTypebox<{ readonly catalog: OperationsService }> = async (app, { catalog }) => {
  app.post(
    '/gc',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'collectGarbage',
        summary: 'Delete incomplete checkpoints (crashed saves, interrupted deletes) older than a threshold; never a save in progress',
        tags: ['operations'],
        security: [{ [BEARER_SCHEME]: [] }],
        body: GcBody,
        response: { 200: jsonResponse('What was deleted (dryRun: would be) and what was kept.', ref(GcResult)), ...common },
      },
    },
    async (request) => {
      const result = await catalog.gc(request.body ?? {});
      if (!request.body?.dryRun && result.deleted.length > 0) request.log.info({ deleted: result.deleted }, 'gc deleted incomplete checkpoints');
      return result;
    },
  );

  app.get(
    '/usage',
    {
      config: { access: 'read' },
      schema: {
        operationId: 'getUsage',
        summary: 'Redis memory and the bytes held by committed, writing, incomplete and pooled checkpoint data, per run prefix',
        tags: ['operations'],
        security: [{}, { [BEARER_SCHEME]: [] }],
        querystring: UsageQuery,
        response: { 200: jsonResponse('Usage.', ref(UsageReport)), ...common },
      },
    },
    async (request) => catalog.usage({ top: request.query.top, ...(request.query.prefix ? { prefix: request.query.prefix } : {}) }),
  );
};
