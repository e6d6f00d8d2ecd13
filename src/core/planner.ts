import type { ChunkStorageMetadata, Metadata, MetadataIndex, StorageMeta, TensorProperties } from './metadata.js';
import type { StateDict } from './state-dict.js';
import type { Tensor } from './tensor.js';

export enum WriteItemType {
  TENSOR = 'TENSOR',
  SHARD = 'SHARD',
  BYTE_IO = 'BYTE_IO',
}

export enum LoadItemType {
  TENSOR = 'TENSOR',
  BYTE_IO = 'BYTE_IO',
}

export interface TensorWriteData {
  readonly chunk: ChunkStorageMetadata;
  readonly properties: TensorProperties;
  /** The global size of the tensor. */
  readonly size: readonly number[];
}

export interface BytesIOWriteData {
  readonly encoding: 'raw' | 'json';
  readonly nbytes?: number | undefined;
}

export interface WriteItem {
  readonly index: MetadataIndex;
  readonly type: WriteItemType;
  readonly bytesIoData?: BytesIOWriteData | undefined;
  readonly tensorData?: TensorWriteData | undefined;
}

export interface ReadItem {
  readonly type: LoadItemType;
  /** Index into the state dict being loaded. */
  readonly destIndex: MetadataIndex;
  /** Offsets into the destination tensor (local coordinates). */
  readonly destOffsets: readonly number[];
  /** Index into the checkpoint. */
  readonly storageIndex: MetadataIndex;
  /** Offsets into the saved chunk (chunk-local coordinates). */
  readonly storageOffsets: readonly number[];
  /** Size of the hyperrectangle to copy. */
  readonly lengths: readonly number[];
}

export interface SavePlan {
  readonly items: readonly WriteItem[];
  readonly storageData?: unknown;
  readonly plannerData?: unknown;
  readonly usable?: boolean;
}

export interface LoadPlan {
  readonly items: readonly ReadItem[];
  readonly storageData?: unknown;
  readonly plannerData?: unknown;
}

/**
 * A destination box: DCP's resolve_tensor returns a narrowed view; without strided
 * views we return the tensor with the box to fill.
 */
export interface TensorRegion {
  readonly tensor: Tensor;
  readonly offsets: readonly number[];
  readonly lengths: readonly number[];
}

/** What `resolveData` hands a storage writer: a tensor (chunk) or serialized bytes. */
export type WriteData = Tensor | Uint8Array;

export interface SavePlanner {
  setUpPlanner(stateDict: StateDict, storageMeta: StorageMeta | undefined, isCoordinator: boolean): void;
  createLocalPlan(): SavePlan;
  createGlobalPlan(allPlans: SavePlan[]): [SavePlan[], Metadata];
  finishPlan(newPlan: SavePlan): SavePlan;
  resolveData(writeItem: WriteItem): WriteData;
}

export interface LoadPlanner {
  setUpPlanner(stateDict: StateDict, metadata: Metadata | undefined, isCoordinator: boolean): void;
  createLocalPlan(): LoadPlan;
  createGlobalPlan(globalPlan: LoadPlan[]): LoadPlan[];
  finishPlan(centralPlan: LoadPlan): LoadPlan;
  /** Deliver a BYTE_IO item's stored bytes. */
  loadBytes(readItem: ReadItem, value: Uint8Array): void;
  /** Where a TENSOR item's data goes. */
  resolveTensor(readItem: ReadItem): TensorRegion;
  /** Called once the region returned by resolveTensor has been filled. */
  commitTensor(readItem: ReadItem, region: TensorRegion): void;
}
