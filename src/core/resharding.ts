/**
 * Resharding geometry, after DCP's resharding.py: whether a saved chunk overlaps a
 * requested one, the read item that copies the overlap, and a sorted index that finds
 * the overlapping saved chunks without testing every pair.
 */
import { metadataIndex, type ChunkStorageMetadata } from './metadata.js';
import { LoadItemType, type ReadItem } from './planner.js';

/** DCP's _check_shard_metadata_pair_overlap. 0-d chunks always overlap. */
export function chunksOverlap(a: ChunkStorageMetadata, b: ChunkStorageMetadata): boolean {
  for (let i = 0; i < a.offsets.length; i++) {
    if (a.offsets[i]! >= b.offsets[i]! + b.sizes[i]!) return false;
    if (b.offsets[i]! >= a.offsets[i]! + a.sizes[i]!) return false;
  }
  return true;
}

/** Below this many (local × saved) pairs, DCP's plain double loop is fastest. */
export const INDEXED_PAIRS_THRESHOLD = 4096;

/**
 * Saved chunks sorted along one dimension, to find the ones that can overlap a box
 * without testing all of them: a chunk overlapping [a, b) in that dim starts in
 * [a − longest, b), where `longest` is the longest saved extent in that dim.
 */
export class SavedChunkIndex {
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
      if (chunksOverlap(box, this.chunks[i]!)) found.push(i);
    }
    return found.sort((x, y) => x - y);
  }
}

export function readItemForOverlap(fqn: string, shard: ChunkStorageMetadata, idx: number, storage: ChunkStorageMetadata, storageIdx: number): ReadItem {
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
