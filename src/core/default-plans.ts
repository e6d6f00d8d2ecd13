/**
 * The default planners' plan functions, after the module functions of DCP's
 * default_planner.py: local and global save plans (the global one builds the Metadata),
 * local and global load plans.
 */
import { DcpError, DcpValueError } from './errors.js';
import { hasOwn } from './flatten.js';
import { DCP_VERSION, type BytesStorageMetadata, type Metadata, type StorageMetadata, type TensorStorageMetadata } from './metadata.js';
import { WriteItemType, type LoadPlan, type ReadItem, type SavePlan, type WriteItem } from './planner.js';
import { createReadItems, createWriteItems } from './planner-helpers.js';
import { formatSize, sameNumbers, type FlatStateDict } from './planner-utils.js';
import { ShardedTensor, Tensor } from './tensor.js';

/**
 * DCP's create_default_local_save_plan (2.4+): every rank plans every value, and the
 * coordinator's dedup decides which rank writes replicated ones.
 */
export function createDefaultLocalSavePlan(stateDict: FlatStateDict, _isCoordinator: boolean): SavePlan {
  const items: WriteItem[] = [];
  for (const fqn of Object.keys(stateDict)) items.push(...createWriteItems(fqn, stateDict[fqn]!));
  return { items };
}

/**
 * DCP's create_default_global_save_plan: builds the Metadata from all items and
 * rewrites each tensor item's index hint to its chunk position. Unlike DCP (which
 * asserts), conflicting items are a DcpValueError with code PLAN_INVALID.
 */
export function createDefaultGlobalSavePlan(allPlans: readonly SavePlan[], rewriteIndexHints = true): [SavePlan[], Metadata] {
  const md: Record<string, StorageMetadata> = {};
  const setMd = (fqn: string, value: StorageMetadata): void => {
    Object.defineProperty(md, fqn, { value, enumerable: true, writable: true, configurable: true });
  };
  const newPlans: SavePlan[] = [];
  for (const plan of allPlans) {
    const newItems: WriteItem[] = [];
    for (const item of plan.items) {
      const fqn = item.index.fqn;
      const existing = hasOwn(md, fqn) ? md[fqn] : undefined;
      if (item.type !== WriteItemType.SHARD && existing !== undefined) {
        throw new DcpValueError('PLAN_INVALID', `Failed to create global plan: "${fqn}" is planned more than once (a ${item.type} item)`);
      }
      if (item.type === WriteItemType.BYTE_IO) {
        const bytesMd: BytesStorageMetadata = { type: 'bytes', encoding: item.bytesIoData?.encoding ?? 'json' };
        setMd(fqn, bytesMd);
        newItems.push(item);
        continue;
      }
      const tensorData = item.tensorData;
      if (tensorData === undefined) throw new DcpValueError('PLAN_INVALID', `Failed to create global plan: tensor item "${fqn}" has no tensor data`);
      let tensorMd: TensorStorageMetadata;
      if (existing === undefined) {
        tensorMd = { type: 'tensor', properties: { ...tensorData.properties }, size: [...tensorData.size], chunks: [] };
        setMd(fqn, tensorMd);
      } else if (existing.type !== 'tensor') {
        throw new DcpValueError('PLAN_INVALID', `Failed to create global plan: "${fqn}" is planned both as bytes and as a tensor shard`);
      } else {
        tensorMd = existing;
        if (!sameNumbers(tensorMd.size, tensorData.size) || tensorMd.properties.dtype !== tensorData.properties.dtype) {
          throw new DcpValueError('PLAN_INVALID', `Failed to create global plan: shards of "${fqn}" disagree on the tensor: ${tensorMd.properties.dtype} ${formatSize(tensorMd.size)} vs ${tensorData.properties.dtype} ${formatSize(tensorData.size)}`);
        }
      }
      newItems.push(rewriteIndexHints ? { ...item, index: { ...item.index, index: tensorMd.chunks.length } } : item);
      tensorMd.chunks.push({ offsets: [...tensorData.chunk.offsets], sizes: [...tensorData.chunk.sizes] });
    }
    newPlans.push({ ...plan, items: newItems });
  }
  return [newPlans, { stateDictMetadata: md, version: DCP_VERSION }];
}

function valueSize(value: Tensor | ShardedTensor): readonly number[] {
  return value instanceof ShardedTensor ? value.globalShape : value.shape;
}

/**
 * DCP's create_default_local_load_plan: read items for every value of the state
 * dict. A key the checkpoint lacks fails in strict mode ("Missing key in checkpoint
 * state_dict: <fqn>.") and is skipped otherwise; a tensor of another size fails
 * ("Size mismatch ..."). Dtypes must match too: DCP converts on copy, we copy bytes.
 */
export function createDefaultLocalLoadPlan(stateDict: FlatStateDict, metadata: Metadata, strict = true): LoadPlan {
  const items: ReadItem[] = [];
  const mds = metadata.stateDictMetadata;
  for (const fqn of Object.keys(stateDict)) {
    const value = stateDict[fqn]!;
    if (!hasOwn(mds, fqn)) {
      if (strict) throw new DcpError('MISSING_KEY', `Missing key in checkpoint state_dict: ${fqn}.`);
      continue;
    }
    const md = mds[fqn]!;
    if (md.type === 'tensor' && (value instanceof Tensor || value instanceof ShardedTensor)) {
      const current = valueSize(value);
      if (!sameNumbers(md.size, current)) {
        throw new DcpValueError('SIZE_MISMATCH', `Size mismatch between saved ${formatSize(md.size)} and current: ${formatSize(current)} for ${fqn}`);
      }
      if (md.properties.dtype !== value.dtype) {
        throw new DcpValueError('DTYPE_MISMATCH', `Dtype mismatch between saved ${md.properties.dtype} and current: ${value.dtype} for ${fqn}`);
      }
    }
    for (const item of createReadItems(fqn, md, value)) items.push(item);
  }
  return { items };
}

/** DCP's create_default_global_load_plan: no global coordination, plans unchanged. */
export function createDefaultGlobalLoadPlan(allPlans: LoadPlan[]): LoadPlan[] {
  return allPlans;
}
