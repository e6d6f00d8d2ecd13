import type { Metadata, MetadataIndex, StorageMeta } from './metadata.js';
import type { LoadPlan, LoadPlanner, SavePlan, SavePlanner } from './planner.js';

/** Where one write item ended up; `storageData` is storage specific and must be JSON. */
export interface WriteResult {
  readonly index: MetadataIndex;
  readonly sizeInBytes: number;
  readonly storageData: unknown;
}

type MaybePromise<T> = T | Promise<T>;

/**
 * Interface used by `save` to write to storage. One instance per rank acts as
 * coordinator or follower; `save` calls, in order:
 * 0. (all ranks) reset(checkpointId) when the caller passed an id
 * 1. (all ranks) setUpStorageWriter(isCoordinator)
 * 2. (all ranks) prepareLocalPlan(plan, planner)
 * 3. (coordinator) prepareGlobalPlan(plans)
 * 4. (all ranks) writeData(plan, planner)
 * 5. (coordinator) finish(metadata, results)
 */
export abstract class StorageWriter {
  abstract reset(checkpointId?: string): void;
  abstract setUpStorageWriter(isCoordinator: boolean, rank?: number, worldSize?: number): MaybePromise<void>;
  /**
   * `planner` (given by this library's `save`, not by DCP) lets a writer look at the data
   * before the global plan, e.g. the incremental memory pre-flight of RedisStorageWriter.
   */
  abstract prepareLocalPlan(plan: SavePlan, planner?: SavePlanner): MaybePromise<SavePlan>;
  abstract prepareGlobalPlan(plans: SavePlan[]): MaybePromise<SavePlan[]>;
  abstract writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]>;
  abstract finish(metadata: Metadata, results: WriteResult[][]): MaybePromise<void>;

  /** Whether this storage can handle `checkpointId` (automatic storage selection). */
  static validateCheckpointId(_checkpointId: string): boolean {
    return false;
  }

  storageMeta(): StorageMeta | undefined {
    return undefined;
  }

  /**
   * Called on every rank when the save failed at any step (not part of DCP's API):
   * release locks, mark the attempt failed, drop partial data. Must not throw.
   */
  async abort(_error: unknown): Promise<void> {}

  /** Release connections this writer opened itself; a no-op by default. */
  async close(): Promise<void> {}
}

/**
 * Interface used by `load` to read from storage. `load` calls, in order:
 * 0. (all ranks) reset(checkpointId) when the caller passed an id
 * 1. (all ranks) readMetadata()
 * 2. (all ranks) setUpStorageReader(metadata, isCoordinator)
 * 3. (all ranks) prepareLocalPlan(plan)
 * 4. (coordinator) prepareGlobalPlan(plans)
 * 5. (all ranks) readData(plan, planner)
 */
export abstract class StorageReader {
  abstract reset(checkpointId?: string): void;
  abstract readMetadata(): Promise<Metadata>;
  abstract setUpStorageReader(metadata: Metadata, isCoordinator: boolean, rank?: number, worldSize?: number): MaybePromise<void>;
  abstract prepareLocalPlan(plan: LoadPlan): MaybePromise<LoadPlan>;
  abstract prepareGlobalPlan(plans: LoadPlan[]): MaybePromise<LoadPlan[]>;
  abstract readData(plan: LoadPlan, planner: LoadPlanner): Promise<void>;

  static validateCheckpointId(_checkpointId: string): boolean {
    return false;
  }

  /**
   * Called on every rank once a load ended, successfully or not (not part of DCP's API):
   * release what readMetadata took (the Redis reader's load pin). Must not throw.
   */
  async endLoad(): Promise<void> {}

  async close(): Promise<void> {}
}
