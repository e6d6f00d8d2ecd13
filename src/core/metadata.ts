import type { DType } from './tensor.js';

/** Format version written into every Metadata (DCP's CURRENT_DCP_VERSION at the time of the port). */
export const DCP_VERSION = '1.0.0';

/** A box inside a tensor: where a saved chunk sits in the global tensor. */
export interface ChunkStorageMetadata {
  readonly offsets: readonly number[];
  readonly sizes: readonly number[];
}

export interface TensorProperties {
  readonly dtype: DType;
  readonly layout: 'strided';
  readonly requiresGrad: boolean;
  readonly memoryFormat: 'contiguous_format';
  readonly pinMemory: boolean;
}

export interface TensorStorageMetadata {
  readonly type: 'tensor';
  readonly properties: TensorProperties;
  readonly size: readonly number[];
  readonly chunks: ChunkStorageMetadata[];
}

/**
 * A non-tensor item. `encoding` says how its bytes decode on load: "raw" for a
 * Uint8Array value, "json" for a UTF-8 JSON value. (DCP pickles; we stay language-neutral.)
 */
export interface BytesStorageMetadata {
  readonly type: 'bytes';
  readonly encoding: BytesEncoding;
}
export type BytesEncoding = 'raw' | 'json';

export type StorageMetadata = TensorStorageMetadata | BytesStorageMetadata;

/**
 * Identifies an item: fqn plus, for tensors, the chunk's offsets. `index` is a hint
 * for fast lookup only; it is not part of the identity (see `metadataIndexKey`).
 */
export interface MetadataIndex {
  readonly fqn: string;
  readonly offset?: readonly number[] | undefined;
  readonly index?: number | undefined;
}

export interface StorageMeta {
  readonly checkpointId?: string | undefined;
  readonly saveId?: string | undefined;
  readonly loadId?: string | undefined;
  readonly modules?: readonly string[] | undefined;
}

/** The object path of a flattened FQN: dict keys are strings, list positions numbers. */
export type ObjectPath = readonly (string | number)[];

/** planner data of the default planners: FQN → path in the original nested state dict. */
export type FlattenMappings = Record<string, ObjectPath>;

export interface Metadata {
  readonly stateDictMetadata: Record<string, StorageMetadata>;
  plannerData?: unknown;
  storageData?: unknown;
  storageMeta?: StorageMeta | undefined;
  version?: string | undefined;
}

export function metadataIndex(fqn: string, offset?: readonly number[], index?: number): MetadataIndex {
  return { fqn, offset, index };
}

/**
 * The identity of a MetadataIndex as a string: equal keys ⇔ equal fqn and offset.
 * JSON keeps it unambiguous for any fqn (a bytes item named "a@0" ≠ chunk [0] of "a").
 */
export function metadataIndexKey(index: MetadataIndex): string {
  return index.offset === undefined ? JSON.stringify([index.fqn]) : JSON.stringify([index.fqn, index.offset]);
}

/** The FQN inside a `metadataIndexKey` (the key itself when it is not one). */
export function metadataIndexKeyFqn(key: string): string {
  try {
    const parsed = JSON.parse(key) as unknown;
    if (Array.isArray(parsed) && typeof parsed[0] === 'string') return parsed[0];
  } catch {
    // not an index key
  }
  return key;
}

export function sameMetadataIndex(a: MetadataIndex, b: MetadataIndex): boolean {
  return metadataIndexKey(a) === metadataIndexKey(b);
}
