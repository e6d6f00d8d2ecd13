/** The Redis backend: storage writer/reader, catalog, keys, errors. */
export { RedisStorageWriter, DEFAULT_SEGMENT_BYTES, type RedisStorageWriterOptions } from './writer.js';
export { RedisStorageReader, type ClusterReadOrder, type RedisStorageReaderOptions } from './reader.js';
export {
  CheckpointCatalog,
  type CheckpointCatalogOptions,
  type CheckpointSummary,
  type CheckpointDetails,
  type ListOptions,
  type ValidateOptions,
  type ValidationProblem,
  type ValidationReport,
  type ProblemKind,
} from './catalog.js';
export * from './errors.js';
export { checkpointIdProblem, isValidCheckpointName, assertValidCheckpointName, parseCheckpointId, isRedisCheckpointId, CHECKPOINT_ID_MAX_LENGTH } from './checkpoint-id.js';
export { KeySpace, CheckpointKeys, DEFAULT_PREFIX } from './keys.js';
export { checkServer, type RedisClient, type RedisInput, type ServerCheck } from './connection.js';
export { STORAGE_FORMAT, INCREMENTAL_STORAGE_FORMAT, type RedisStorageData, type IncrementalStorageData, type StorageData, type ItemLocation, type PieceLocation, type Part } from './layout.js';
export type { CheckpointState, CheckpointStatus } from './checkpoint-store.js';
export type { RedisInputDescription, RedisStorageWriterDescription } from './portable.js';
