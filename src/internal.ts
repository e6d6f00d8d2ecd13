/**
 * `redis-dcp/internal`: the building blocks behind the public API (planner helpers,
 * resharding, flattening, wire forms of errors, the key layout, the catalog's TypeBox
 * schemas). For tests, the benchmark and tools; no compatibility promise between versions.
 */
export * from './index.js';
export * from './core/index.js';
export * from './redis/index.js';
export { KeySpace, CheckpointKeys } from './redis/keys.js';
export { parseStorageData, storedParts, type RedisStorageData, type IncrementalStorageData, type StorageData, type StoredPart, type ItemLocation, type PieceLocation, type Part } from './redis/layout.js';
export { PIECE_HASH, pieceId, pieceHash, sweepPieces, storedPieceBytes } from './redis/pieces.js';
export * as catalogSchemas from './redis/catalog-schemas.js';
export { fromRedisError, replyError } from './redis/errors.js';
export { uploadTimesOf, defaultStagerOf } from './core/async-save.js';
