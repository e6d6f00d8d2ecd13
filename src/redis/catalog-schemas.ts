/**
 * The shapes of what CheckpointCatalog returns, as TypeBox schemas: the one definition
 * of each. The catalog's TypeScript types are `Static<>` of them; the admin API serves
 * them as named components of openapi.yaml; the CLI prints them. See docs/format.md.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { DcpError } from '../core/errors.js';
import type { Metadata } from '../core/metadata.js';
import { DTYPES } from '../core/tensor.js';
import { CHECKPOINT_ID_CHARACTERS, CHECKPOINT_ID_MAX_LENGTH } from './checkpoint-id.js';
import { CHECKPOINT_STATES } from './checkpoint-store.js';

/** Kinds of problem a validation reports. */
export const PROBLEM_KINDS = ['missing_key', 'wrong_length', 'checksum_mismatch', 'metadata_invalid', 'not_committed'] as const;

/** Largest page of a listing, and the default: defined beside the page reader, so the catalog loads without TypeBox. */
export { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX } from './catalog-states.js';

/** A union of string literals from a runtime list (never restated by hand). */
function literals<T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ ...Type.Union(values.map((v) => Type.Literal(v))), ...options });
}

/**
 * A `$ref` to a named schema, typed as that schema. Named schemas are registered once
 * (app.addSchema) and appear under components/schemas in openapi.yaml.
 */
export function ref<T extends TSchema>(schema: T) {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') throw new DcpError('INTERNAL_ERROR', 'ref() needs a schema with an $id');
  return Type.Unsafe<Static<T>>({ $ref: `${id}#` });
}

export const CheckpointState = literals(CHECKPOINT_STATES, {
  $id: 'CheckpointState',
  title: 'CheckpointState',
  description: 'committed: loadable. writing: a save holds the lock. incomplete: a save started and never committed (crashed or failed); delete it.',
});

export const CheckpointId = Type.String({
  minLength: 1,
  maxLength: CHECKPOINT_ID_MAX_LENGTH,
  pattern: `^${CHECKPOINT_ID_CHARACTERS}+$`,
  description:
    `Checkpoint id: 1-${CHECKPOINT_ID_MAX_LENGTH} characters of letters, digits and . _ - / :, no leading or trailing "/", ` +
    'no empty, "." or ".." segments. In a path, "/" must be percent-encoded as %2F.',
  examples: ['run1/step-100'],
});

/** Ids starting with this (the empty string matches every id). */
export const CheckpointIdPrefix = Type.String({ maxLength: CHECKPOINT_ID_MAX_LENGTH, pattern: `^${CHECKPOINT_ID_CHARACTERS}*$`, description: 'Only ids starting with this.' });

const summaryProperties = {
  id: CheckpointId,
  state: ref(CheckpointState),
  createdAt: Type.String({ format: 'date-time', description: 'When the (latest) save of this id started, ISO 8601 UTC.' }),
  worldSize: Type.Integer({ minimum: 0, description: 'Number of ranks that saved it.' }),
  totalBytes: Type.Integer({ minimum: 0, description: 'Bytes of tensor and bytes data.' }),
  storedBytes: Type.Integer({
    minimum: 0,
    description: 'Bytes this checkpoint added to Redis: totalBytes for a full save; for an incremental save only the pieces no other checkpoint had stored (totalBytes / storedBytes is the dedup ratio).',
  }),
  itemCount: Type.Integer({ minimum: 0, description: 'Number of items (FQNs) in the state dict.' }),
  step: Type.Optional(Type.Integer({ minimum: 0, description: 'The training step of the committed save (saves made by CheckpointManager; absent otherwise).' })),
  metrics: Type.Optional(
    Type.Record(Type.String(), Type.Number(), { description: 'Metrics reported with the committed save, e.g. { "loss": 0.31 } (CheckpointManager; absent otherwise).' }),
  ),
};

export const CheckpointSummary = Type.Object(summaryProperties, { $id: 'CheckpointSummary', title: 'CheckpointSummary', additionalProperties: false });
export type CheckpointSummary = Static<typeof CheckpointSummary>;

export const CheckpointPage = Type.Object(
  {
    items: Type.Array(ref(CheckpointSummary), { description: 'Newest first.' }),
    nextCursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` to get the next page; null when nothing older is left (with a prefix or state filter the last page can come back empty).',
    }),
  },
  { $id: 'CheckpointPage', title: 'CheckpointPage', additionalProperties: false },
);
export type CheckpointPage = Static<typeof CheckpointPage>;

const Dims = Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 64 });

const TensorItem = Type.Object(
  {
    type: Type.Literal('tensor'),
    properties: Type.Object(
      {
        dtype: literals(DTYPES),
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

/** The JSON form of DCP's Metadata (src/core/metadata.ts is its TypeScript definition). */
export const CheckpointMetadata = Type.Unsafe<Metadata>(
  Type.Object(
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
    { $id: 'CheckpointMetadata', title: 'CheckpointMetadata', additionalProperties: false, description: 'The DCP metadata of the committed checkpoint.' },
  ),
);

export const CheckpointDetails = Type.Object(
  {
    ...summaryProperties,
    committedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'When it was committed; null when not committed.' }),
    metadata: Type.Union([ref(CheckpointMetadata), Type.Null()], { description: 'null while nothing is committed.' }),
  },
  { $id: 'CheckpointDetails', title: 'CheckpointDetails', additionalProperties: false },
);
export type CheckpointDetails = Static<typeof CheckpointDetails>;

export const ProblemKind = literals(PROBLEM_KINDS, { $id: 'ProblemKind', title: 'ProblemKind' });
export type ProblemKind = Static<typeof ProblemKind>;

export const ValidationProblem = Type.Object(
  {
    kind: ref(ProblemKind),
    fqn: Type.Optional(Type.String({ description: 'The state dict item affected.' })),
    key: Type.Optional(Type.String({ description: 'The Redis key affected.' })),
    sharedWith: Type.Optional(
      Type.Array(Type.String(), { description: 'For a damaged piece of an incremental save: every committed checkpoint of the prefix that references it (this one included).' }),
    ),
    message: Type.String(),
  },
  { $id: 'ValidationProblem', title: 'ValidationProblem', additionalProperties: false },
);
export type ValidationProblem = Static<typeof ValidationProblem>;

export const ValidationReport = Type.Object(
  { ok: Type.Boolean(), problems: Type.Array(ref(ValidationProblem)) },
  { $id: 'ValidationReport', title: 'ValidationReport', additionalProperties: false },
);
export type ValidationReport = Static<typeof ValidationReport>;

const Bytes = (description: string) => Type.Integer({ minimum: 0, description });
const Share = (what: string) =>
  Type.Object({ checkpoints: Type.Integer({ minimum: 0, description: `Number of ${what} checkpoints.` }), bytes: Bytes(`Bytes held by ${what} checkpoints.`) }, { additionalProperties: false });

export const RunUsage = Type.Object(
  {
    prefix: Type.String({ description: 'The id up to and including its last "/" (e.g. "run1/"); "" for ids without "/".' }),
    checkpoints: Type.Integer({ minimum: 0 }),
    committedBytes: Bytes('Bytes of its committed checkpoints (with replaced saves a load pin holds).'),
    incompleteBytes: Bytes('Bytes planned by its unfinished saves (writing or incomplete).'),
  },
  { $id: 'RunUsage', title: 'RunUsage', additionalProperties: false },
);
export type RunUsage = Static<typeof RunUsage>;

export const UsageReport = Type.Object(
  {
    redis: Type.Object(
      {
        usedMemory: Bytes('INFO used_memory (summed over the masters of a Cluster).'),
        maxMemory: Type.Union([Bytes('INFO maxmemory.'), Type.Null()], { description: 'null when Redis has no maxmemory.' }),
      },
      { additionalProperties: false },
    ),
    committed: Share('committed'),
    writing: Share('writing (a save holds a valid lease)'),
    incomplete: Share('incomplete (crashed or failed saves, unfinished deletes; their planned bytes)'),
    logicalBytes: Bytes(
      'Bytes of the state dicts: totalBytes of the committed checkpoints (and the bytes of replaced saves a load pin holds) plus the planned bytes of unfinished saves. Equals committed + writing + incomplete bytes unless incremental saves share pieces (then it is larger).',
    ),
    pooled: Type.Object(
      { segments: Type.Integer({ minimum: 0 }), bytes: Bytes('Bytes of retired segments waiting in the recycling pool (recycleTtlMs).') },
      { additionalProperties: false },
    ),
    runs: Type.Array(ref(RunUsage), { description: 'Per id prefix, the largest first (top N).' }),
  },
  { $id: 'UsageReport', title: 'UsageReport', additionalProperties: false, description: 'What the checkpoints hold in Redis, from the catalog and state hashes (no scan of data keys).' },
);
export type UsageReport = Static<typeof UsageReport>;

export const GcResult = Type.Object(
  {
    deleted: Type.Array(CheckpointId, { description: 'Ids deleted (with dryRun: that would be deleted).' }),
    kept: Type.Array(CheckpointId, { description: 'Ids looked at and kept (too recent, locked by a save, pinned by a load, or kept by a retention rule).' }),
    released: Type.Optional(
      Type.Array(CheckpointId, {
        description: 'Committed ids whose superseded saves (held by a load pin at their overwrite, or left by a failed drop) were removed (with dryRun: would be). Absent when none.',
      }),
    ),
  },
  { $id: 'GcResult', title: 'GcResult', additionalProperties: false },
);
export type GcResult = Static<typeof GcResult>;

/** Every named schema, in dependency order: registered once by the admin API (components/schemas). */
export const CATALOG_SCHEMAS = [CheckpointState, CheckpointSummary, CheckpointPage, CheckpointMetadata, CheckpointDetails, ProblemKind, ValidationProblem, ValidationReport, RunUsage, UsageReport, GcResult] as const;
