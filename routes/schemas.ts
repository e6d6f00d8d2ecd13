/**
 * JSON schemas of the admin API: the single source of truth for request validation,
 * response serialization and the OpenAPI document (openapi.yaml is generated from them).
 * The catalog's result shapes are defined once in src/redis/catalog-schemas.ts and used
 * here by reference; error codes come from the table in src/core/error-codes.ts.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { ERROR_CODES, type ErrorCode } from '../src/core/error-codes.js';
import { CATALOG_SCHEMAS, CheckpointId, CheckpointIdPrefix, CheckpointState, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, ref } from '../src/redis/catalog-schemas.js';

export { CheckpointDetails, CheckpointPage, CheckpointSummary, ValidationReport, ref } from '../src/redis/catalog-schemas.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The OpenAPI security scheme of the bearer token (ADMIN_TOKEN). */
export const BEARER_SCHEME = 'bearerAuth';

export const Problem = Type.Object(
  {
    statusCode: Type.Integer({ minimum: 400, maximum: 599, description: 'The HTTP status, repeated.' }),
    code: Type.Unsafe<ErrorCode>({
      type: 'string',
      enum: Object.keys(ERROR_CODES),
      description: 'Stable machine-readable error code from the table in docs/errors.md, e.g. CHECKPOINT_NOT_FOUND, INVALID_CHECKPOINT_ID, INVALID_PARAMETER.',
    }),
    error: Type.String({ description: 'The HTTP status text.' }),
    message: Type.String({ description: 'What went wrong, for humans; for invalid input it names the rule that failed.' }),
  },
  { $id: 'Problem', title: 'Problem', additionalProperties: false, description: 'Every error answer has this shape (content type application/problem+json).' },
);
export type ProblemBody = Static<typeof Problem>;

/** Schemas registered once with app.addSchema and referenced by $ref (components in OpenAPI). */
export const SHARED_SCHEMAS: readonly TSchema[] = [Problem, ...CATALOG_SCHEMAS];

/** A response entry whose body is a Problem. */
export function problemResponse(description: string) {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: ref(Problem) } } };
}

/** A JSON response entry. */
export function jsonResponse<T extends TSchema>(description: string, schema: T) {
  return { description, content: { 'application/json': { schema } } };
}

export const Health = Type.Object(
  {
    status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    redis: Type.Object(
      {
        reachable: Type.Boolean(),
        latencyMs: Type.Optional(Type.Number({ minimum: 0 })),
        error: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    ),
  },
  { title: 'Health', additionalProperties: false },
);

export const IdParams = Type.Object({ id: CheckpointId }, { additionalProperties: false });

export const ListQuery = Type.Object(
  {
    prefix: Type.Optional(CheckpointIdPrefix),
    state: Type.Optional(ref(CheckpointState)),
    limit: Type.Integer({ minimum: 1, maximum: LIST_LIMIT_MAX, default: LIST_LIMIT_DEFAULT, description: 'Page size.' }),
    cursor: Type.Optional(Type.String({ maxLength: 2048, pattern: '^[A-Za-z0-9_-]*$', description: 'nextCursor of the previous page (empty or absent: the first page).' })),
  },
  { additionalProperties: false },
);

export const ValidateQuery = Type.Object(
  { deep: Type.Boolean({ default: false, description: 'Read every byte and check every part checksum (slow on big checkpoints).' }) },
  { additionalProperties: false },
);
