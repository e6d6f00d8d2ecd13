/**
 * The building blocks of the default planners, after DCP's planner_helpers.py: write
 * items for each kind of value, read items for each saved chunk a rank needs.
 */
import { DcpValueError } from './errors.js';
import type { StateDictLeaf } from './flatten.js';
import { metadataIndex, type ChunkStorageMetadata, type StorageMetadata, type TensorStorageMetadata } from './metadata.js';
import { LoadItemType, WriteItemType, type ReadItem, type WriteItem } from './planner.js';
import { tensorProperties } from './planner-utils.js';
import { chunksOverlap, INDEXED_PAIRS_THRESHOLD, readItemForOverlap, SavedChunkIndex } from './resharding.js';
import { elementSize, numelOf, ShardedTensor, Tensor } from './tensor.js';

export function createWriteItemForTensor(fqn: string, tensor: Tensor): WriteItem {
  const offsets = new Array<number>(tensor.shape.length).fill(0);
  return {
    index: metadataIndex(fqn, offsets),
    type: WriteItemType.TENSOR,
    tensorData: { chunk: { offsets, sizes: [...tensor.shape] }, properties: tensorProperties(tensor.dtype), size: [...tensor.shape] },
  };
}

/** One SHARD item per local shard, in shard order, each with the global size. */
export function createWriteItemsForShardedTensor(fqn: string, sharded: ShardedTensor): WriteItem[] {
  return sharded.localShards.map((shard) => ({
    index: metadataIndex(fqn, [...shard.offsets]),
    type: WriteItemType.SHARD,
    tensorData: {
      chunk: { offsets: [...shard.offsets], sizes: [...shard.tensor.shape] },
      properties: tensorProperties(sharded.dtype),
      size: [...sharded.globalShape],
    },
  }));
}

/** A BYTE_IO item: "raw" for a Uint8Array (its length is known), "json" for a JSON value. */
export function createWriteItemForBytes(fqn: string, value: Uint8Array | unknown): WriteItem {
  if (value instanceof Uint8Array) {
    return { index: metadataIndex(fqn), type: WriteItemType.BYTE_IO, bytesIoData: { encoding: 'raw', nbytes: value.byteLength } };
  }
  return { index: metadataIndex(fqn), type: WriteItemType.BYTE_IO, bytesIoData: { encoding: 'json' } };
}

export function createWriteItems(fqn: string, value: StateDictLeaf): WriteItem[] {
  if (value instanceof ShardedTensor) return createWriteItemsForShardedTensor(fqn, value);
  if (value instanceof Tensor) return [createWriteItemForTensor(fqn, value)];
  return [createWriteItemForBytes(fqn, value)];
}

/** The storage size DCP attributes to a write item: global numel × element size (None for bytes). */
export function tensorStorageSize(item: WriteItem): number | undefined {
  if (item.tensorData === undefined) return undefined;
  return numelOf(item.tensorData.size) * elementSize(item.tensorData.properties.dtype);
}

/**
 * DCP's create_read_items_for_chunk_list: for each requested local chunk (in order)
 * and each saved chunk (in order) that overlaps it, one read item that copies the
 * overlap. destOffsets are relative to the local chunk, storageOffsets to the saved
 * chunk; both indexes carry the chunk position as hint. Same items in the same order
 * as DCP; with many chunks on both sides, candidates come from a sorted index
 * instead of DCP's all-pairs loop.
 */
export function createReadItemsForChunkList(fqn: string, checkpointMd: TensorStorageMetadata, localChunks: readonly ChunkStorageMetadata[]): ReadItem[] {
  const readItems: ReadItem[] = [];
  const saved = checkpointMd.chunks;
  const ndim = checkpointMd.size.length;
  const consistent = ndim > 0 && saved.every((c) => c.offsets.length === ndim) && localChunks.every((c) => c.offsets.length === ndim);
  if (consistent && saved.length * localChunks.length > INDEXED_PAIRS_THRESHOLD) {
    const index = SavedChunkIndex.forChunks(saved);
    localChunks.forEach((shard, idx) => {
      for (const storageIdx of index.overlapping(shard)) readItems.push(readItemForOverlap(fqn, shard, idx, saved[storageIdx]!, storageIdx));
    });
    return readItems;
  }
  for (let idx = 0; idx < localChunks.length; idx++) {
    const shard = localChunks[idx]!;
    for (let storageIdx = 0; storageIdx < saved.length; storageIdx++) {
      const storage = saved[storageIdx]!;
      if (chunksOverlap(shard, storage)) readItems.push(readItemForOverlap(fqn, shard, idx, storage, storageIdx));
    }
  }
  return readItems;
}

/** The chunks a rank holds of a tensor value: the whole tensor, or its local shards. */
export function createChunkList(value: Tensor | ShardedTensor): ChunkStorageMetadata[] {
  if (value instanceof ShardedTensor) return value.localShards.map((s) => ({ offsets: [...s.offsets], sizes: [...s.tensor.shape] }));
  return [{ offsets: new Array<number>(value.shape.length).fill(0), sizes: [...value.shape] }];
}

function createReadItemForBytes(fqn: string): ReadItem {
  return { type: LoadItemType.BYTE_IO, destIndex: metadataIndex(fqn), destOffsets: [0], storageIndex: metadataIndex(fqn), storageOffsets: [0], lengths: [0] };
}

function kindOf(value: StateDictLeaf): string {
  if (value instanceof ShardedTensor) return 'a ShardedTensor';
  if (value instanceof Tensor) return 'a Tensor';
  if (value instanceof Uint8Array) return 'bytes';
  return 'a JSON value';
}

/** DCP's _create_read_items, with clear errors when tensor and non-tensor meet. */
export function createReadItems(fqn: string, md: StorageMetadata, value: StateDictLeaf): ReadItem[] {
  const isTensor = value instanceof Tensor || value instanceof ShardedTensor;
  if (md.type === 'bytes') {
    if (isTensor) {
      throw new DcpValueError('TYPE_MISMATCH', `Cannot load "${fqn}": the checkpoint holds ${md.encoding === 'raw' ? 'bytes' : 'a JSON value'} (BytesStorageMetadata) but the state dict has ${kindOf(value)}`);
    }
    return [createReadItemForBytes(fqn)];
  }
  if (!isTensor) {
    throw new DcpValueError('TYPE_MISMATCH', `Invalid checkpoint metadata for ${fqn}, expected BytesStorageMetadata but found TensorStorageMetadata (the state dict has ${kindOf(value)}, the checkpoint a tensor)`);
  }
  return createReadItemsForChunkList(fqn, md, createChunkList(value));
}
