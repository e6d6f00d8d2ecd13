/**
 * JSON schemas of the admin API: the single source of truth for request validation,
 * response serialization and the OpenAPI document (openapi.yaml is generated from them).
 */
import { Type, type Static, type TSchema } from 'typebox';
import { CHECKPOINT_ID_MAX_LENGTH } from '../src/redis/checkpoint-id.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const Problem = Type.Object(
  {
    statusCode: Type.Integer({ minimum: 400, maximum: 599, description: 'The HTTP status, repeated.' }),
    code: Type.String({ description: 'Stable machine-readable error code, e.g. CHECKPOINT_NOT_FOUND, INVALID_CHECKPOINT_ID, INVALID_PARAMETER.' }),
    error: Type.String({ description: 'The HTTP status text.' }),
    message: Type.String({ description: 'What went wrong, for humans; for invalid input it names the rule that failed.' }),
  },
  { $id: 'Problem', title: 'Problem', additionalProperties: false, description: 'Every error answer has this shape (content type application/problem+json).' },
);
export type ProblemBody = Static<typeof Problem>;

/** Schemas registered once with app.addSchema and referenced by $ref (components in OpenAPI). */
export const SHARED_SCHEMAS = [Problem] as const;

/** A response entry whose body is a Problem. */
export function problemResponse(description: string) {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: Type.Unsafe<ProblemBody>({ $ref: 'Problem#' }) } } };
}

/** A JSON response entry. */
export function jsonResponse<T extends TSchema>(description: string, schema: T) {
  return { description, content: { 'application/json': { schema } } };
}

export const CheckpointStateRecord = Type.Union([Type.Literal('committed'), Type.Literal('writing'), Type.Literal('incomplete')], {
  description: 'committed: loadable. writing: a save holds the lock. incomplete: a save started and never committed (crashed or failed); delete it.',
});

export const CheckpointId = Type.String({
  minLength: 1,
  maxLength: CHECKPOINT_ID_MAX_LENGTH,
  pattern: '^[A-Za-z0-9._\\-/:]+$',
  description:
    `Checkpoint id: 1-${CHECKPOINT_ID_MAX_LENGTH} characters of letters, digits and . _ - / :, no leading or trailing "/", ` +
    'no empty, "." or ".." segments. In a path, "/" must be percent-encoded as %2F.',
  examples: ['run1/step-100'],
});

export const CheckpointSummary = Type.Object(
  {
    id: CheckpointId,
    state: CheckpointStateRecord,
    createdAt: Type.String({ format: 'date-time', description: 'When the (latest) save of this id started, ISO 8601 UTC.' }),
    worldSize: Type.Integer({ minimum: 0, description: 'Number of ranks that saved it.' }),
    totalBytes: Type.Integer({ minimum: 0, description: 'Bytes of tensor and bytes data.' }),
    itemCount: Type.Integer({ minimum: 0, description: 'Number of items (FQNs) in the state dict.' }),
  },
  { title: 'CheckpointSummary', additionalProperties: false },
);

export const CheckpointPage = Type.Object(
  {
    items: Type.Array(CheckpointSummary, { description: 'Newest first.' }),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` to get the next page; null when nothing older is left (with a prefix or state filter the last page can come back empty).' }),
  },
  { title: 'CheckpointPage', additionalProperties: false },
);

const Dims = Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 64 });

const TensorItem = Type.Object(
  {
    type: Type.Literal('tensor'),
    properties: Type.Object(
      {
        dtype: Type.Union([
          Type.Literal('float64'),
          Type.Literal('float32'),
          Type.Literal('float16'),
          Type.Literal('bfloat16'),
          Type.Literal('int64'),
          Type.Literal('int32'),
          Type.Literal('int16'),
          Type.Literal('int8'),
          Type.Literal('uint8'),
          Type.Literal('bool'),
        ]),
        layout: Type.Literal('strided'),
        requiresGrad: Type.Boolean(),
        memoryFormat: Type.Literal('contiguous_format'),
        pinMemory: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    size: Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 64, description: 'Global shape.' }),
    chunks: Type.Array(Type.Object({ offsets: Dims, sizes: Dims }, { additionalProperties: false }), { description: 'The saved boxes of the global tensor.' }),
  },
  { title: 'TensorItem', additionalProperties: false },
);

const BytesItem = Type.Object(
  {
    type: Type.Literal('bytes'),
    encoding: Type.Union([Type.Literal('raw'), Type.Literal('json')], { description: 'raw: opaque bytes; json: UTF-8 JSON text.' }),
  },
  { title: 'BytesItem', additionalProperties: false },
);

export const Metadata = Type.Object(
  {
    version: Type.Optional(Type.String()),
    stateDictMetadata: Type.Record(Type.String(), Type.Union([TensorItem, BytesItem]), { description: 'One entry per FQN.' }),
    plannerData: Type.Optional(Type.Unknown({ description: 'Planner data (for the default planners: FQN to object path).' })),
    storageData: Type.Optional(Type.Unknown({ description: 'Where the Redis backend stored each item (see docs/format.md).' })),
    storageMeta: Type.Optional(
      Type.Object(
        {
          checkpointId: Type.Optional(Type.String()),
          saveId: Type.Optional(Type.String()),
          loadId: Type.Optional(Type.String()),
          modules: Type.Optional(Type.Array(Type.String())),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { title: 'Metadata', additionalProperties: false, description: 'The DCP metadata of the committed checkpoint.' },
);

export const CheckpointDetails = Type.Object(
  {
    ...CheckpointSummary.properties,
    committedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When it was committed; null when not committed.' }),
    metadata: Type.Union([Metadata, Type.Null()], { description: 'null while nothing is committed.' }),
  },
  { title: 'CheckpointDetails', additionalProperties: false },
);

export const ValidationProblem = Type.Object(
  {
    kind: Type.Union([Type.Literal('missing_key'), Type.Literal('wrong_length'), Type.Literal('checksum_mismatch'), Type.Literal('metadata_invalid'), Type.Literal('not_committed')]),
    fqn: Type.Optional(Type.String({ description: 'The state dict item affected.' })),
    key: Type.Optional(Type.String({ description: 'The Redis key affected.' })),
    message: Type.String(),
  },
  { title: 'ValidationProblem', additionalProperties: false },
);

export const ValidationReport = Type.Object(
  { ok: Type.Boolean(), problems: Type.Array(ValidationProblem) },
  { title: 'ValidationReport', additionalProperties: false },
);

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
    prefix: Type.Optional(Type.String({ maxLength: CHECKPOINT_ID_MAX_LENGTH, pattern: '^[A-Za-z0-9._\\-/:]*$', description: 'Only ids starting with this.' })),
    state: Type.Optional(CheckpointStateRecord),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'Page size.' }),
    cursor: Type.Optional(Type.String({ maxLength: 2048, pattern: '^[A-Za-z0-9_-]*$', description: 'nextCursor of the previous page (empty or absent: the first page).' })),
  },
  { additionalProperties: false },
);

export const ValidateQuery = Type.Object(
  { deep: Type.Boolean({ default: false, description: 'Read every byte and check every CRC32C (slow on big checkpoints).' }) },
  { additionalProperties: false },
);
