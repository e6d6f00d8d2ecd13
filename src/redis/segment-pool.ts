/**
 * Segment recycling (opt-in, `recycleTtlMs`): segments of dropped saves are renamed into a
 * TTL'd pool and new saves write over them, reusing memory Redis already holds. Protocol
 * and safety: docs/format.md, "Segment recycling"; why: docs/performance.md, "Why a new
 * checkpoint costs Redis page faults".
 */
import { Redis } from 'ioredis';
import type { RedisClient } from './connection.js';
import type { KeySpace } from './keys.js';
import { runScript } from './scripts.js';

/** Keys per retire script call: bounded script run time. */
const RETIRE_BATCH = 256;

export class SegmentPool {
  private constructor(
    private readonly client: Redis,
    private readonly keySpace: KeySpace,
    readonly ttlMs: number,
  ) {}

  /** A pool when recycling is on (`ttlMs` > 0) and `client` is a standalone connection. */
  static for(client: RedisClient, keySpace: KeySpace, ttlMs: number | undefined): SegmentPool | undefined {
    if (ttlMs === undefined || ttlMs <= 0 || !(client instanceof Redis)) return undefined;
    return new SegmentPool(client, keySpace, Math.ceil(ttlMs));
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

  /** Takes up to `count` pooled segment names (each at most once across all savers). */
  async take(count: number): Promise<string[]> {
    if (count <= 0) return [];
    return (await this.client.spop(this.keySpace.segmentPool(), count)) ?? [];
  }
}
