/**
 * The building blocks of the default planners, after DCP's planner_helpers.py,
 * default_planner.py (module functions), resharding.py and utils.py.
 */
import { DcpError, DcpValueError } from './errors.js';
import type { StateDictLeaf } from './flatten.js';
import {
  DCP_VERSION,
  metadataIndex,
  type BytesStorageMetadata,
  type ChunkStorageMetadata,
  type Metadata,
  type MetadataIndex,
  type StorageMetadata,
  type TensorProperties,
  type TensorStorageMetadata,
} from './metadata.js';
import { LoadItemType, WriteItemType, type LoadPlan, type ReadItem, type SavePlan, type WriteItem } from './planner.js';
import { elementSize, numelOf, ShardedTensor, Tensor, type DType } from './tensor.js';

/** A flat state dict: FQN → leaf (what the planners work on after flattening). */
export type FlatStateDict = Record<string, StateDictLeaf>;

function hasOwn(target: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(target, key);
}

export function formatSize(size: readonly number[]): string {
  return `[${size.join(', ')}]`;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function tensorProperties(dtype: DType): TensorProperties {
  return { dtype, layout: 'strided', requiresGrad: false, memoryFormat: 'contiguous_format', pinMemory: false };
}

// ---------------------------------------------------------------------------
// Write items

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

/**
 * DCP's create_default_local_save_plan (2.4+): every rank plans every value, and the
 * coordinator's dedup decides which rank writes replicated ones.
 */
export function createDefaultLocalSavePlan(stateDict: FlatStateDict, _isCoordinator: boolean): SavePlan {
  const items: WriteItem[] = [];
  for (const fqn of Object.keys(stateDict)) items.push(...createWriteItems(fqn, stateDict[fqn]!));
  return { items };
}

/** The storage size DCP attributes to a write item: global numel × element size (None for bytes). */
export function tensorStorageSize(item: WriteItem): number | undefined {
  if (item.tensorData === undefined) return undefined;
  return numelOf(item.tensorData.size) * elementSize(item.tensorData.properties.dtype);
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
        throw new DcpValueError(`Failed to create global plan: "${fqn}" is planned more than once (a ${item.type} item)`, 'PLAN_INVALID');
      }
      if (item.type === WriteItemType.BYTE_IO) {
        const bytesMd: BytesStorageMetadata = { type: 'bytes', encoding: item.bytesIoData?.encoding ?? 'json' };
        setMd(fqn, bytesMd);
        newItems.push(item);
        continue;
      }
      const tensorData = item.tensorData;
      if (tensorData === undefined) throw new DcpValueError(`Failed to create global plan: tensor item "${fqn}" has no tensor data`, 'PLAN_INVALID');
      let tensorMd: TensorStorageMetadata;
      if (existing === undefined) {
        tensorMd = { type: 'tensor', properties: { ...tensorData.properties }, size: [...tensorData.size], chunks: [] };
        setMd(fqn, tensorMd);
      } else if (existing.type !== 'tensor') {
        throw new DcpValueError(`Failed to create global plan: "${fqn}" is planned both as bytes and as a tensor shard`, 'PLAN_INVALID');
      } else {
        tensorMd = existing;
        if (!sameNumbers(tensorMd.size, tensorData.size) || tensorMd.properties.dtype !== tensorData.properties.dtype) {
          throw new DcpValueError(
            `Failed to create global plan: shards of "${fqn}" disagree on the tensor: ${tensorMd.properties.dtype} ${formatSize(tensorMd.size)} vs ${tensorData.properties.dtype} ${formatSize(tensorData.size)}`,
            'PLAN_INVALID',
          );
        }
      }
      newItems.push(rewriteIndexHints ? { ...item, index: { ...item.index, index: tensorMd.chunks.length } } : item);
      tensorMd.chunks.push({ offsets: [...tensorData.chunk.offsets], sizes: [...tensorData.chunk.sizes] });
    }
    newPlans.push({ ...plan, items: newItems });
  }
  return [newPlans, { stateDictMetadata: md, version: DCP_VERSION }];
}

// ---------------------------------------------------------------------------
// Global plan validation

export type PlanProblemKind = 'out_of_bounds' | 'overlap' | 'coverage' | 'rank';

export interface PlanProblem {
  readonly fqn: string;
  readonly kind: PlanProblemKind;
  readonly message: string;
}

function chunkText(chunk: ChunkStorageMetadata): string {
  return `{offsets ${formatSize(chunk.offsets)}, sizes ${formatSize(chunk.sizes)}}`;
}

function chunkInBounds(size: readonly number[], chunk: ChunkStorageMetadata): boolean {
  for (let i = 0; i < size.length; i++) {
    const o = chunk.offsets[i]!;
    const s = chunk.sizes[i]!;
    if (!(o >= 0) || !(s >= 0) || o + s > size[i]!) return false;
  }
  return true;
}

function boxesOverlap(a: ChunkStorageMetadata, b: ChunkStorageMetadata): boolean {
  for (let i = 0; i < a.offsets.length; i++) {
    if (a.offsets[i]! >= b.offsets[i]! + b.sizes[i]!) return false;
    if (b.offsets[i]! >= a.offsets[i]! + a.sizes[i]!) return false;
  }
  return true;
}

/**
 * Pairs of overlapping chunks, found with a sweep along the dimension with the most
 * distinct offsets: chunks sorted by start; each is compared only with the chunks
 * still open at its start. Row, column and block layouts stay near-linear (50k
 * chunks in milliseconds) where DCP's all-pairs check is quadratic. Empty chunks
 * hold no data and never overlap (DCP would flag an empty chunk strictly inside
 * another one).
 */
export function findOverlappingChunks(chunks: readonly ChunkStorageMetadata[], limit = 10): Array<[number, number]> {
  const ndim = chunks[0]?.offsets.length ?? 0;
  const found: Array<[number, number]> = [];
  const live = chunks.map((_, i) => i).filter((i) => numelOf(chunks[i]!.sizes) > 0);
  if (live.length < 2) return found;
  if (ndim === 0) return [[live[0]!, live[1]!]];
  let sweepDim = 0;
  let bestDistinct = -1;
  for (let d = 0; d < ndim; d++) {
    const distinct = new Set(live.map((i) => chunks[i]!.offsets[d])).size;
    if (distinct > bestDistinct) {
      bestDistinct = distinct;
      sweepDim = d;
    }
  }
  const start = (i: number): number => chunks[i]!.offsets[sweepDim]!;
  const end = (i: number): number => chunks[i]!.offsets[sweepDim]! + chunks[i]!.sizes[sweepDim]!;
  live.sort((a, b) => start(a) - start(b) || a - b);
  let open: number[] = [];
  for (const i of live) {
    const s = start(i);
    const stillOpen: number[] = [];
    for (const j of open) {
      if (end(j) <= s) continue;
      stillOpen.push(j);
      if (boxesOverlap(chunks[i]!, chunks[j]!)) {
        found.push(j < i ? [j, i] : [i, j]);
        if (found.length >= limit) return found;
      }
    }
    stillOpen.push(i);
    open = stillOpen;
  }
  return found;
}

/**
 * DCP's _validate_global_plan, returning what is wrong instead of logging it:
 * every tensor's chunks lie within its size, no two chunks overlap, and the chunks
 * cover the tensor (their volume equals its volume). Scalars (0-d) are skipped as
 * DCP does. DCP ≥ 2.6 skips the coverage check for a single rank; we always check.
 */
export function findGlobalPlanProblems(metadata: Metadata, limit = 20): PlanProblem[] {
  const problems: PlanProblem[] = [];
  for (const fqn of Object.keys(metadata.stateDictMetadata)) {
    if (problems.length >= limit) break;
    const value = metadata.stateDictMetadata[fqn]!;
    if (value.type === 'bytes') continue;
    if (value.size.length === 0) continue;
    let chunksVolume = 0;
    let rankOk = true;
    for (const chunk of value.chunks) {
      if (chunk.offsets.length !== value.size.length || chunk.sizes.length !== value.size.length) {
        problems.push({ fqn, kind: 'rank', message: `key ${fqn} has a chunk ${chunkText(chunk)} whose rank differs from the tensor size ${formatSize(value.size)}` });
        rankOk = false;
        continue;
      }
      if (!chunkInBounds(value.size, chunk)) {
        problems.push({ fqn, kind: 'out_of_bounds', message: `key ${fqn} has out of bounds chunk: tensor-size ${formatSize(value.size)} chunk ${chunkText(chunk)}` });
      }
      chunksVolume += numelOf(chunk.sizes);
    }
    if (!rankOk) continue;
    for (const [a, b] of findOverlappingChunks(value.chunks, Math.max(1, limit - problems.length))) {
      problems.push({ fqn, kind: 'overlap', message: `key ${fqn} has overlapping chunks: ${chunkText(value.chunks[a]!)} ${chunkText(value.chunks[b]!)}` });
    }
    const tensorVolume = numelOf(value.size);
    if (chunksVolume !== tensorVolume) {
      problems.push({ fqn, kind: 'coverage', message: `key ${fqn} has invalid fill: tensor-volume ${tensorVolume} chunks-volume ${chunksVolume}` });
    }
  }
  return problems;
}

/** DCP's _validate_global_plan: true when findGlobalPlanProblems finds nothing. */
export function validateGlobalPlan(_globalPlan: readonly SavePlan[], metadata: Metadata): boolean {
  return findGlobalPlanProblems(metadata, 1).length === 0;
}

/** "Failed to validate global plan", with what failed for which FQN. */
export class GlobalPlanValidationError extends DcpValueError {
  readonly problems: readonly PlanProblem[];
  constructor(problems: readonly PlanProblem[]) {
    const shown = problems.slice(0, 10).map((p) => p.message);
    const more = problems.length > 10 ? `; and ${problems.length - 10} more` : '';
    super(`Failed to validate global plan: ${shown.join('; ')}${more}`, 'PLAN_INVALID');
    this.problems = problems;
  }
}

// ---------------------------------------------------------------------------
// Read items (resharding)

/** DCP's _check_shard_metadata_pair_overlap. 0-d chunks always overlap. */
export function chunksOverlap(a: ChunkStorageMetadata, b: ChunkStorageMetadata): boolean {
  return boxesOverlap(a, b);
}

/** Below this many (local × saved) pairs, DCP's plain double loop is fastest. */
const INDEXED_PAIRS_THRESHOLD = 4096;

/**
 * Saved chunks sorted along one dimension, to find the ones that can overlap a box
 * without testing all of them: a chunk overlapping [a, b) in that dim starts in
 * [a − longest, b), where `longest` is the longest saved extent in that dim.
 */
class SavedChunkIndex {
  private readonly order: number[];
  private readonly starts: number[];
  private readonly longest: number;

  constructor(
    private readonly chunks: readonly ChunkStorageMetadata[],
    private readonly dim: number,
  ) {
    this.order = chunks.map((_, i) => i).sort((x, y) => chunks[x]!.offsets[dim]! - chunks[y]!.offsets[dim]! || x - y);
    this.starts = this.order.map((i) => chunks[i]!.offsets[dim]!);
    this.longest = chunks.reduce((m, c) => Math.max(m, c.sizes[dim]!), 0);
  }

  static forChunks(chunks: readonly ChunkStorageMetadata[]): SavedChunkIndex {
    const ndim = chunks[0]!.offsets.length;
    let best = 0;
    let bestDistinct = -1;
    for (let d = 0; d < ndim; d++) {
      const distinct = new Set(chunks.map((c) => c.offsets[d])).size;
      if (distinct > bestDistinct) {
        bestDistinct = distinct;
        best = d;
      }
    }
    return new SavedChunkIndex(chunks, best);
  }

  private lowerBound(value: number): number {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Positions (ascending) of the saved chunks that overlap `box`, by DCP's overlap rule. */
  overlapping(box: ChunkStorageMetadata): number[] {
    const a = box.offsets[this.dim]!;
    const b = a + box.sizes[this.dim]!;
    const found: number[] = [];
    for (let k = this.lowerBound(a - this.longest); k < this.order.length && this.starts[k]! < b; k++) {
      const i = this.order[k]!;
      if (boxesOverlap(box, this.chunks[i]!)) found.push(i);
    }
    return found.sort((x, y) => x - y);
  }
}

function readItemForOverlap(fqn: string, shard: ChunkStorageMetadata, idx: number, storage: ChunkStorageMetadata, storageIdx: number): ReadItem {
  const ndim = shard.offsets.length;
  const storageOffsets: number[] = new Array<number>(ndim);
  const destOffsets: number[] = new Array<number>(ndim);
  const lengths: number[] = new Array<number>(ndim);
  for (let d = 0; d < ndim; d++) {
    const savedOffset = storage.offsets[d]!;
    const currentOffset = shard.offsets[d]!;
    const end = Math.min(savedOffset + storage.sizes[d]!, currentOffset + shard.sizes[d]!);
    lengths[d] = end - Math.max(currentOffset, savedOffset);
    if (savedOffset > currentOffset) {
      storageOffsets[d] = 0;
      destOffsets[d] = savedOffset - currentOffset;
    } else {
      storageOffsets[d] = currentOffset - savedOffset;
      destOffsets[d] = 0;
    }
  }
  return {
    type: LoadItemType.TENSOR,
    destIndex: metadataIndex(fqn, [...shard.offsets], idx),
    destOffsets,
    storageIndex: metadataIndex(fqn, [...storage.offsets], storageIdx),
    storageOffsets,
    lengths,
  };
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
      if (boxesOverlap(shard, storage)) readItems.push(readItemForOverlap(fqn, shard, idx, storage, storageIdx));
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
      throw new DcpValueError(`Cannot load "${fqn}": the checkpoint holds ${md.encoding === 'raw' ? 'bytes' : 'a JSON value'} (BytesStorageMetadata) but the state dict has ${kindOf(value)}`, 'TYPE_MISMATCH');
    }
    return [createReadItemForBytes(fqn)];
  }
  if (!isTensor) {
    throw new DcpValueError(`Invalid checkpoint metadata for ${fqn}, expected BytesStorageMetadata but found TensorStorageMetadata (the state dict has ${kindOf(value)}, the checkpoint a tensor)`, 'TYPE_MISMATCH');
  }
  return createReadItemsForChunkList(fqn, md, createChunkList(value));
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
        throw new DcpValueError(`Size mismatch between saved ${formatSize(md.size)} and current: ${formatSize(current)} for ${fqn}`, 'SIZE_MISMATCH');
      }
      if (md.properties.dtype !== value.dtype) {
        throw new DcpValueError(`Dtype mismatch between saved ${md.properties.dtype} and current: ${value.dtype} for ${fqn}`, 'DTYPE_MISMATCH');
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

// ---------------------------------------------------------------------------
// Lookups (DCP's utils.find_state_dict_object / find_tensor_shard)

function offsetText(offset: readonly number[] | undefined): string {
  return offset === undefined ? 'None' : formatSize(offset);
}

/** The local shard at `index.offset` (index hint first, then a scan). */
export function findShard(sharded: ShardedTensor, index: MetadataIndex): Tensor {
  const offset = index.offset;
  if (offset === undefined) throw new DcpValueError(`Cannot lookup ${index.fqn} since its a ShardedTensor and no offset was provided`, 'ITEM_NOT_FOUND');
  const shards = sharded.localShards;
  if (index.index !== undefined && index.index !== null) {
    const hinted = shards[index.index];
    if (hinted !== undefined && sameNumbers(hinted.offsets, offset)) return hinted.tensor;
  }
  for (const shard of shards) if (sameNumbers(shard.offsets, offset)) return shard.tensor;
  throw new DcpValueError(`Could not find shard at '${offsetText(offset)}' for FQN: '${index.fqn}'`, 'ITEM_NOT_FOUND');
}

/** The tensor (or local shard) `index` names inside a tensor value. */
export function findTensorShard(value: Tensor | ShardedTensor, index: MetadataIndex): Tensor {
  if (value instanceof ShardedTensor) return findShard(value, index);
  if (index.offset !== undefined && index.offset !== null) {
    if (index.offset.length === value.shape.length && index.offset.every((o) => o === 0)) return value;
    throw new DcpValueError(`FQN: '${index.fqn}' is not a ShardedTensor, can't find by offset: '${offsetText(index.offset)}'`, 'ITEM_NOT_FOUND');
  }
  return value;
}

/**
 * The object `index` names: for tensors the Tensor or local shard Tensor, otherwise
 * the value itself.
 */
export function findStateDictObject(stateDict: FlatStateDict, index: MetadataIndex): Tensor | Uint8Array | StateDictLeaf {
  if (!hasOwn(stateDict, index.fqn)) throw new DcpValueError(`Could not find FQN: '${index.fqn}'`, 'ITEM_NOT_FOUND');
  const value = stateDict[index.fqn]!;
  if (value instanceof Tensor || value instanceof ShardedTensor) return findTensorShard(value, index);
  if (index.offset !== undefined && index.offset !== null) {
    throw new DcpValueError(`FQN: '${index.fqn}' is not a ShardedTensor, can't find by offset: '${offsetText(index.offset)}'`, 'ITEM_NOT_FOUND');
  }
  return value;
}
