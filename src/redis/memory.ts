/**
 * Redis memory, as the save pre-flight and the usage report see it: `used_memory` and
 * `maxmemory` from INFO (summed over the masters of a Cluster), and the bytes a global
 * save plan will write. See docs/format.md, "Memory pre-flight".
 */
import { Cluster } from 'ioredis';
import type { SavePlan } from '../core/planner.js';
import { elementSize } from '../core/tensor.js';
import type { RedisClient } from './connection.js';
import { InsufficientMemoryError } from './errors.js';
import type { StoredEstimate } from './piece-writer.js';

export interface RedisMemory {
  /** INFO used_memory (bytes). */
  readonly usedMemory: number;
  /** INFO maxmemory (bytes); null when unlimited (0) on any node. */
  readonly maxMemory: number | null;
}

function field(info: string, name: string): number {
  const m = new RegExp(`^${name}:(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

/** used_memory and maxmemory of the data Redis (of every master of a Cluster, summed). */
export async function redisMemory(client: RedisClient): Promise<RedisMemory> {
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  const infos = await Promise.all(nodes.map((n) => n.info('memory')));
  let used = 0;
  let max: number | null = 0;
  for (const info of infos) {
    used += field(info, 'used_memory');
    const m = field(info, 'maxmemory');
    max = m === 0 || max === null ? null : max + m;
  }
  return { usedMemory: used, maxMemory: max };
}

/** Bytes the items of these plans will write: tensor chunks by shape and dtype, bytes items by their recorded size. */
export function plannedBytes(plans: readonly SavePlan[]): number {
  let total = 0;
  for (const plan of plans) {
    for (const item of plan.items) {
      if (item.tensorData) total += item.tensorData.chunk.sizes.reduce((a, b) => a * b, 1) * elementSize(item.tensorData.properties.dtype);
      else total += item.bytesIoData?.nbytes ?? 0;
    }
  }
  return total;
}

/** Per data key Redis spends on the key, its dict entry and allocator rounding (measured ~100-200 B; generous). */
export const PER_SEGMENT_OVERHEAD = 256;
/** Per piece reference of an incremental save: a member of its piece index and its share of the count hash (generous). */
export const PER_REFERENCE_OVERHEAD = 128;

/**
 * Bytes a save will add to Redis, for the pre-flight: the global plan's bytes, plus the values
 * in flight (they sit in Redis' query buffers) and the per-key overhead. For an incremental
 * save whose every rank sent an estimate (local plans' `storageData.stored`, from
 * estimateStored): only the new pieces, plus one index entry per referenced piece.
 */
export function bytesNeeded(plans: readonly SavePlan[], o: { segmentBytes: number; maxInFlight: number; incremental: boolean }): number {
  const estimates = plans.map((p) => (p.storageData as { stored?: StoredEstimate } | undefined)?.stored);
  if (o.incremental && estimates.every((e) => e !== undefined)) {
    const sum = (f: (e: StoredEstimate) => number) => estimates.reduce((n, e) => n + f(e!), 0);
    const bytes = sum((e) => e.newBytes);
    return bytes + Math.min(bytes, o.maxInFlight * o.segmentBytes) + sum((e) => e.newPieces) * PER_SEGMENT_OVERHEAD + sum((e) => e.pieces) * PER_REFERENCE_OVERHEAD;
  }
  const bytes = plannedBytes(plans);
  const segments = plans.length + Math.ceil(bytes / o.segmentBytes);
  return bytes + Math.min(bytes, o.maxInFlight * o.segmentBytes) + segments * PER_SEGMENT_OVERHEAD;
}

/**
 * Throws INSUFFICIENT_MEMORY when `needed` bytes cannot fit in what Redis can still take
 * (maxmemory − used_memory, plus `reusable` bytes the save will write over instead of
 * allocating, i.e. pooled segments). Does nothing when maxmemory is not set.
 */
export async function assertMemoryFor(client: RedisClient, id: string, needed: number, reusable = 0): Promise<void> {
  const { usedMemory, maxMemory } = await redisMemory(client);
  if (maxMemory === null) return;
  const free = Math.max(0, maxMemory - usedMemory) + reusable;
  if (needed > free) {
    throw new InsufficientMemoryError(id, needed, free, `maxmemory ${maxMemory} − used_memory ${usedMemory}${reusable ? ` + ${reusable} pooled` : ''}`);
  }
}
