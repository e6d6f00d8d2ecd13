/**
 * Test-only in-memory storage, so the DCP core is tested without Redis. Shared by
 * the in-process ranks of one test; the metadata goes through the JSON encoding
 * so its round trip is exercised by every core test.
 */
import { LoadItemType, type LoadPlan, type LoadPlanner, type SavePlan, type SavePlanner } from '../../src/core/planner.js';
import { StorageReader, StorageWriter, type WriteResult } from '../../src/core/storage.js';
import { metadataIndexKey, type Metadata } from '../../src/core/metadata.js';
import { metadataFromJSON, metadataToJSON } from '../../src/core/metadata-json.js';
import { lookupChunk, writeDataBytes } from '../../src/core/storage-helpers.js';
import { copyBoxInto } from '../../src/core/tensor-box.js';

export type Step = 'setUp' | 'prepareLocalPlan' | 'prepareGlobalPlan' | 'writeData' | 'finish' | 'readMetadata' | 'readData';

export class MemoryStore {
  readonly blobs = new Map<string, Uint8Array>();
  metadataJson: string | undefined;
  /** Calls, in order, as "rank:step", to check the protocol order. */
  readonly calls: string[] = [];
}

/** Throws from `step` on `rank` (to test failure propagation). */
export interface FailureInjection {
  readonly rank: number;
  readonly step: Step;
}

function maybeFail(inject: FailureInjection | undefined, rank: number, step: Step): void {
  if (inject && inject.rank === rank && inject.step === step) {
    throw Object.assign(new Error(`injected failure in ${step} on rank ${rank}`), { code: 'INJECTED' });
  }
}

export class MemoryStorageWriter extends StorageWriter {
  private rank = 0;
  constructor(
    readonly store: MemoryStore,
    private readonly inject?: FailureInjection,
  ) {
    super();
  }
  reset(): void {}
  setUpStorageWriter(_isCoordinator: boolean, rank = 0): void {
    this.rank = rank;
    this.store.calls.push(`${rank}:setUp`);
    maybeFail(this.inject, rank, 'setUp');
  }
  prepareLocalPlan(plan: SavePlan): SavePlan {
    this.store.calls.push(`${this.rank}:prepareLocalPlan`);
    maybeFail(this.inject, this.rank, 'prepareLocalPlan');
    return plan;
  }
  prepareGlobalPlan(plans: SavePlan[]): SavePlan[] {
    this.store.calls.push(`${this.rank}:prepareGlobalPlan`);
    maybeFail(this.inject, this.rank, 'prepareGlobalPlan');
    return plans.map((p, i) => ({ ...p, storageData: { prefix: `rank${i}` } }));
  }
  async writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
    this.store.calls.push(`${this.rank}:writeData`);
    maybeFail(this.inject, this.rank, 'writeData');
    const prefix = (plan.storageData as { prefix: string }).prefix;
    return plan.items.map((item) => {
      const bytes = writeDataBytes(planner.resolveData(item));
      const key = `${prefix}/${metadataIndexKey(item.index)}`;
      this.store.blobs.set(key, bytes.slice());
      return { index: item.index, sizeInBytes: bytes.byteLength, storageData: { key } };
    });
  }
  finish(metadata: Metadata, results: WriteResult[][]): void {
    this.store.calls.push(`${this.rank}:finish`);
    maybeFail(this.inject, this.rank, 'finish');
    const storageData: Record<string, string> = {};
    for (const r of results.flat()) storageData[metadataIndexKey(r.index)] = (r.storageData as { key: string }).key;
    this.store.metadataJson = metadataToJSON({ ...metadata, storageData });
  }
}

export class MemoryStorageReader extends StorageReader {
  private metadata: Metadata | undefined;
  private rank = 0;
  constructor(
    readonly store: MemoryStore,
    private readonly inject?: FailureInjection,
  ) {
    super();
  }
  reset(): void {}
  async readMetadata(): Promise<Metadata> {
    if (this.store.metadataJson === undefined) throw new Error('no checkpoint');
    return metadataFromJSON(this.store.metadataJson);
  }
  setUpStorageReader(metadata: Metadata, _isCoordinator: boolean, rank = 0): void {
    this.metadata = metadata;
    this.rank = rank;
    maybeFail(this.inject, rank, 'readMetadata');
  }
  prepareLocalPlan(plan: LoadPlan): LoadPlan {
    return plan;
  }
  prepareGlobalPlan(plans: LoadPlan[]): LoadPlan[] {
    return plans;
  }
  async readData(plan: LoadPlan, planner: LoadPlanner): Promise<void> {
    maybeFail(this.inject, this.rank, 'readData');
    const md = this.metadata!;
    const keys = md.storageData as Record<string, string>;
    for (const item of plan.items) {
      const blob = this.store.blobs.get(keys[metadataIndexKey(item.storageIndex)]!)!;
      if (item.type === LoadItemType.BYTE_IO) {
        planner.loadBytes(item, blob);
        continue;
      }
      const { chunk } = lookupChunk(md, item.storageIndex);
      const region = planner.resolveTensor(item);
      copyBoxInto(region, blob, chunk.sizes, item.storageOffsets);
      planner.commitTensor(item, region);
    }
  }
}
