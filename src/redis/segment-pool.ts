/**
 * Segment recycling (opt-in, `recycleTtlMs`): segments of dropped saves are renamed into a
 * TTL'd pool and new saves write over them, reusing memory Redis already holds. On a Cluster
 * the pool is per master (pooled and data keys share no slot): see cluster-pool.ts. Protocol
 * and safety: docs/format.md, "Segment recycling"; why: docs/performance.md, "Why a new
 * checkpoint costs Redis page faults".
 */
import { Cluster, Redis } from 'ioredis';
import { ClusterPool, pooledClusterSegments } from './cluster-pool.js';
import type { RedisClient } from './connection.js';
import type { KeySpace } from './keys.js';
import { runScript } from './scripts.js';

/** What savers, deletes and the memory check use of a pool, standalone or Cluster. */
export interface SegmentRecycler {
  readonly ttlMs: number;
  retire(dataKeys: readonly string[]): Promise<number>;
  bytes(): Promise<number>;
  /** Pooled segment names to write over, one per data key (undefined: none left for it). */
  takeFor(dataKeys: readonly string[]): Promise<Array<string | undefined>>;
}

/** Keys per retire script call: bounded script run time. */
const RETIRE_BATCH = 256;

export class SegmentPool implements SegmentRecycler {
  private constructor(
    private readonly client: Redis,
    private readonly keySpace: KeySpace,
    readonly ttlMs: number,
  ) {}

  /** A pool when recycling is on (`ttlMs` > 0): one set for a standalone Redis, one per master on a Cluster. */
  static for(client: RedisClient, keySpace: KeySpace, ttlMs: number | undefined): SegmentRecycler | undefined {
    if (ttlMs === undefined || ttlMs <= 0) return undefined;
    if (client instanceof Cluster) return new ClusterPool(client, keySpace, Math.ceil(ttlMs));
    return client instanceof Redis ? new SegmentPool(client, keySpace, Math.ceil(ttlMs)) : undefined;
  }

  /** Moves these data keys into the pool (missing ones are skipped); resolves with how many moved. */
  async retire(dataKeys: readonly string[]): Promise<number> {
    let moved = 0;
    for (let i = 0; i < dataKeys.length; i += RETIRE_BATCH) {
      const batch = dataKeys.slice(i, i + RETIRE_BATCH);
      const keys = [this.keySpace.segmentPool(), ...batch.flatMap((k) => [k, this.keySpace.pooledSegment(k)])];
      const reply = await runScript(this.client, 'retire-segments', keys, [this.ttlMs]);
      moved += Number(reply[1]);
    }
    return moved;
  }

  /** Bytes held by pooled segments (see pooledSegments). */
  async bytes(): Promise<number> {
    return (await pooledSegments(this.client, this.keySpace)).bytes;
  }

  /** Takes up to `count` pooled segment names (each at most once across all savers). */
  async take(count: number): Promise<string[]> {
    if (count <= 0) return [];
    return (await this.client.spop(this.keySpace.segmentPool(), count)) ?? [];
  }

  async takeFor(dataKeys: readonly string[]): Promise<Array<string | undefined>> {
    const names = await this.take(dataKeys.length);
    return dataKeys.map((_, i) => names[i]);
  }
}

/**
 * Segments in the pool and their bytes: the pool set's members, STRLEN pipelined (expired
 * ones count 0). Bounded by `limit` members; on a Cluster, every master's pool.
 */
export async function pooledSegments(client: RedisClient, keySpace: KeySpace, limit = 100_000): Promise<{ segments: number; bytes: number }> {
  if (client instanceof Cluster) return pooledClusterSegments(client, keySpace, limit);
  const names: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.sscan(keySpace.segmentPool(), cursor, 'COUNT', 1000);
    cursor = next;
    names.push(...batch);
  } while (cursor !== '0' && names.length < limit);
  let segments = 0;
  let bytes = 0;
  for (let i = 0; i < names.length; i += 1000) {
    const pipeline = client.pipeline();
    for (const name of names.slice(i, i + 1000)) pipeline.strlen(name);
    for (const [err, n] of (await pipeline.exec()) ?? []) {
      if (err || !n) continue;
      segments++;
      bytes += Number(n);
    }
  }
  return { segments, bytes };
}
