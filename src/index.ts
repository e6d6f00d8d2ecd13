/**
 * redis-dcp: PyTorch Distributed Checkpoint's storage layer on Redis. This is the
 * public API, an explicit list (like torch.distributed.checkpoint's __all__); names
 * that tests and the benchmark need beyond it are on the `redis-dcp/internal` subpath
 * (src/internal.ts), which makes no compatibility promise. See README "Architecture".
 */
import { registerStorageBackend } from './core/storage-registry.js';
import { redisStorageBackend } from './redis/backend.js';

// save / load: DCP's protocol across the ranks of a process group.
export { save, type SaveOptions } from './core/save.js';
export { load, type LoadOptions } from './core/load.js';
export { asyncSave, type AsyncSaveOptions, type AsyncSaveResponse } from './core/async-save.js';
export { DefaultStager, type AsyncStager } from './core/staging.js';
export { waitForPendingSave } from './core/in-flight.js';

// Events and progress (README "Events and progress").
export { SAVE_CHANNEL, LOAD_CHANNEL, DELETE_CHANNEL, type SaveEvent, type LoadEvent, type DeleteEvent, type SavePhases, type LoadPhases, type DeletePhases } from './core/tracing.js';
export { createMetrics, DCP_METRIC_NAMES, DURATION_BUCKETS, type DcpMetrics, type DcpMetricsOptions } from './observe/metrics.js';
export { PROGRESS_INTERVAL_MS, reportTransferred, type ProgressEvent, type ProgressCallback, type ProgressPhase } from './core/progress.js';

// The data model.
export { Tensor, ShardedTensor, DTYPES, isDType, elementSize, type DType, type Shard, type TensorData } from './core/tensor.js';
export {
  DCP_VERSION,
  type Metadata,
  type MetadataIndex,
  type ChunkStorageMetadata,
  type TensorProperties,
  type TensorStorageMetadata,
  type BytesStorageMetadata,
  type BytesEncoding,
  type StorageMetadata,
  type StorageMeta,
  type ObjectPath,
  type FlattenMappings,
} from './core/metadata.js';
export { metadataFromJSON, metadataToJSON, type MetadataLimits } from './core/metadata-json.js';
export type { StateDict, StateDictValue, JsonValue } from './core/state-dict.js';
export {
  WriteItemType,
  LoadItemType,
  type WriteItem,
  type ReadItem,
  type SavePlan,
  type LoadPlan,
  type SavePlanner,
  type LoadPlanner,
  type TensorWriteData,
  type BytesIOWriteData,
  type TensorRegion,
  type WriteData,
} from './core/planner.js';
export { StorageWriter, StorageReader, type WriteResult } from './core/storage.js';

// The default planners (DCP's default_planner module).
export { DefaultSavePlanner, DefaultLoadPlanner, type DefaultSavePlannerOptions, type DefaultLoadPlannerOptions } from './core/default-planner.js';
export { createDefaultLocalSavePlan, createDefaultGlobalSavePlan, createDefaultLocalLoadPlan, createDefaultGlobalLoadPlan } from './core/default-plans.js';

// Automatic storage selection by checkpoint id.
export { registerStorageBackend, type StorageBackend } from './core/storage-registry.js';
export { redisStorageBackend } from './redis/backend.js';

// Errors: one code table, typed classes.
export { ERROR_CODES, EXIT_CODES, isErrorCode, type ErrorCode, type ErrorCodeInfo, type ExitCode } from './core/error-codes.js';
export {
  DcpError,
  DcpValueError,
  InvalidCheckpointIdError,
  RemoteRankError,
  CheckpointError,
  CollectiveTimeoutError,
  GlobalPlanValidationError,
  type DcpErrorOptions,
} from './core/errors.js';
export {
  CheckpointNotFoundError,
  CheckpointNotCommittedError,
  CheckpointExistsError,
  CheckpointLockedError,
  LockUnavailableError,
  FencedError,
  ChecksumMismatchError,
  MissingDataError,
} from './redis/errors.js';

// Process groups.
export type { ProcessGroup } from './core/process-group.js';
export { createLocalGroups, type LocalGroupOptions } from './group/local-group.js';
export { RedisProcessGroup, type RedisProcessGroupOptions } from './group/redis-process-group.js';
export type { WorkerRecipe, ThreadPortable, GroupContext } from './async/recipe.js';

// The Redis backend.
export { RedisStorageWriter, DEFAULT_SEGMENT_BYTES, type RedisStorageWriterOptions } from './redis/writer.js';
export { RedisStorageReader, type ClusterReadOrder, type RedisStorageReaderOptions } from './redis/reader.js';
export {
  CheckpointCatalog,
  type CheckpointCatalogOptions,
  type CheckpointSummary,
  type CheckpointDetails,
  type CheckpointPage,
  type ListOptions,
  type ValidateOptions,
  type ValidationProblem,
  type ValidationReport,
  type ProblemKind,
} from './redis/catalog.js';
export type { UsageReport, RunUsage, GcResult, GcOptions, UsageOptions, DeleteOptions } from './redis/catalog.js';
export { CheckpointInUseError, InsufficientMemoryError } from './redis/errors.js';
export { DEFAULT_PIN_TTL_MS } from './redis/reader.js';

// CheckpointManager: steps, retention, gc and memory budgets for a training run.
export { CheckpointManager, type CheckpointManagerOptions, type ManagerSaveOptions, type ManagerSaveResult, type ManagerAsyncSaveResponse, type ManagerLoadOptions } from './manager/manager.js';
export { applyRetention, type RetentionPolicy, type KeepBest, type RetentionCandidate, type RetentionDecision } from './manager/retention.js';
export { CHECKPOINT_STATES, type CheckpointState, type CheckpointStatus } from './redis/checkpoint-store.js';
export { checkpointIdProblem, isValidCheckpointName, assertValidCheckpointName, parseCheckpointId, isRedisCheckpointId, CHECKPOINT_ID_MAX_LENGTH } from './redis/checkpoint-id.js';
export { DEFAULT_PREFIX } from './redis/keys.js';
export { checkServer, type RedisClient, type RedisInput, type ServerCheck } from './redis/connection.js';
export { STORAGE_FORMAT, INCREMENTAL_STORAGE_FORMAT } from './redis/layout.js';

// `save`/`load` given only a redis:// checkpoint id find the Redis backend (README "Automatic storage selection").
registerStorageBackend(redisStorageBackend);
