/**
 * Wrappers that time each step of the storage protocol around any writer/reader,
 * so the benchmark can say where a save or load spends its time (planning, data,
 * commit) without touching the library.
 */
import type { Metadata, StorageMeta } from '../src/core/metadata.js';
import type { LoadPlan, LoadPlanner, SavePlan, SavePlanner } from '../src/core/planner.js';
import { StorageReader, StorageWriter, type WriteResult } from '../src/core/storage.js';

/** Milliseconds spent per step; `at` is when each step first began (performance.now()). */
export class StepTimes {
  readonly ms: Record<string, number> = {};
  readonly at: Record<string, number> = {};

  async time<T>(step: string, fn: () => T | Promise<T>): Promise<T> {
    const start = performance.now();
    this.at[step] ??= start;
    try {
      return await fn();
    } finally {
      this.ms[step] = (this.ms[step] ?? 0) + performance.now() - start;
    }
  }

  /** Milliseconds from `since` (performance.now()) to the first start of `step`. */
  startOf(step: string, since: number): number | undefined {
    const at = this.at[step];
    return at === undefined ? undefined : at - since;
  }
}

export class TimedStorageWriter extends StorageWriter {
  readonly times = new StepTimes();
  constructor(private readonly inner: StorageWriter) {
    super();
  }
  reset(checkpointId?: string): void {
    this.inner.reset(checkpointId);
  }
  setUpStorageWriter(isCoordinator: boolean, rank?: number, worldSize?: number): Promise<void> {
    return this.times.time('setUp', () => this.inner.setUpStorageWriter(isCoordinator, rank, worldSize));
  }
  prepareLocalPlan(plan: SavePlan): Promise<SavePlan> {
    return this.times.time('prepareLocalPlan', () => this.inner.prepareLocalPlan(plan));
  }
  prepareGlobalPlan(plans: SavePlan[]): Promise<SavePlan[]> {
    return this.times.time('prepareGlobalPlan', () => this.inner.prepareGlobalPlan(plans));
  }
  writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
    return this.times.time('writeData', () => this.inner.writeData(plan, planner));
  }
  finish(metadata: Metadata, results: WriteResult[][]): Promise<void> {
    return this.times.time('finish', () => this.inner.finish(metadata, results));
  }
  override abort(error: unknown): Promise<void> {
    return this.inner.abort(error);
  }
  override storageMeta(): StorageMeta | undefined {
    return this.inner.storageMeta();
  }
  override close(): Promise<void> {
    return this.inner.close();
  }
}

export class TimedStorageReader extends StorageReader {
  readonly times = new StepTimes();
  constructor(private readonly inner: StorageReader) {
    super();
  }
  reset(checkpointId?: string): void {
    this.inner.reset(checkpointId);
  }
  readMetadata(): Promise<Metadata> {
    return this.times.time('readMetadata', () => this.inner.readMetadata());
  }
  setUpStorageReader(metadata: Metadata, isCoordinator: boolean, rank?: number, worldSize?: number): Promise<void> {
    return this.times.time('setUp', () => this.inner.setUpStorageReader(metadata, isCoordinator, rank, worldSize));
  }
  prepareLocalPlan(plan: LoadPlan): Promise<LoadPlan> {
    return this.times.time('prepareLocalPlan', () => this.inner.prepareLocalPlan(plan));
  }
  prepareGlobalPlan(plans: LoadPlan[]): Promise<LoadPlan[]> {
    return this.times.time('prepareGlobalPlan', () => this.inner.prepareGlobalPlan(plans));
  }
  readData(plan: LoadPlan, planner: LoadPlanner): Promise<void> {
    return this.times.time('readData', () => this.inner.readData(plan, planner));
  }
  override close(): Promise<void> {
    return this.inner.close();
  }
}
