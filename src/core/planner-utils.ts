/**
 * Small lookups and helpers of the planners, after DCP's utils.py (find_state_dict_object,
 * find_tensor_shard). See docs/format.md for the data model.
 */
import { DcpValueError } from './errors.js';
import { hasOwn, type StateDictLeaf } from './flatten.js';
import type { MetadataIndex, TensorProperties } from './metadata.js';
import { ShardedTensor, Tensor, type DType } from './tensor.js';

/** A flat state dict: FQN → leaf (what the planners work on after flattening). */
export type FlatStateDict = Record<string, StateDictLeaf>;

export function formatSize(size: readonly number[]): string {
  return `[${size.join(', ')}]`;
}

export function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function tensorProperties(dtype: DType): TensorProperties {
  return { dtype, layout: 'strided', requiresGrad: false, memoryFormat: 'contiguous_format', pinMemory: false };
}

function offsetText(offset: readonly number[] | undefined): string {
  return offset === undefined ? 'None' : formatSize(offset);
}

/** The local shard at `index.offset` (index hint first, then a scan). */
export function findShard(sharded: ShardedTensor, index: MetadataIndex): Tensor {
  const offset = index.offset;
  if (offset === undefined) throw new DcpValueError('ITEM_NOT_FOUND', `Cannot lookup ${index.fqn} since its a ShardedTensor and no offset was provided`);
  const shards = sharded.localShards;
  if (index.index !== undefined && index.index !== null) {
    const hinted = shards[index.index];
    if (hinted !== undefined && sameNumbers(hinted.offsets, offset)) return hinted.tensor;
  }
  for (const shard of shards) if (sameNumbers(shard.offsets, offset)) return shard.tensor;
  throw new DcpValueError('ITEM_NOT_FOUND', `Could not find shard at '${offsetText(offset)}' for FQN: '${index.fqn}'`);
}

/** The tensor (or local shard) `index` names inside a tensor value. */
export function findTensorShard(value: Tensor | ShardedTensor, index: MetadataIndex): Tensor {
  if (value instanceof ShardedTensor) return findShard(value, index);
  if (index.offset !== undefined && index.offset !== null) {
    if (index.offset.length === value.shape.length && index.offset.every((o) => o === 0)) return value;
    throw new DcpValueError('ITEM_NOT_FOUND', `FQN: '${index.fqn}' is not a ShardedTensor, can't find by offset: '${offsetText(index.offset)}'`);
  }
  return value;
}

/**
 * The object `index` names: for tensors the Tensor or local shard Tensor, otherwise
 * the value itself.
 */
export function findStateDictObject(stateDict: FlatStateDict, index: MetadataIndex): Tensor | Uint8Array | StateDictLeaf {
  if (!hasOwn(stateDict, index.fqn)) throw new DcpValueError('ITEM_NOT_FOUND', `Could not find FQN: '${index.fqn}'`);
  const value = stateDict[index.fqn]!;
  if (value instanceof Tensor || value instanceof ShardedTensor) return findTensorShard(value, index);
  if (index.offset !== undefined && index.offset !== null) {
    throw new DcpValueError('ITEM_NOT_FOUND', `FQN: '${index.fqn}' is not a ShardedTensor, can't find by offset: '${offsetText(index.offset)}'`);
  }
  return value;
}
