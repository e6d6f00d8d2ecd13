/**
 * Segment recycling (opt-in, `recycleTtlMs`). Redis hands the memory of deleted large
 * values back to the OS at once, so every new checkpoint makes redis-server fault in fresh
 * pages, which caps a save near the rate Redis can take new memory. Overwriting an existing
 * value does not: the new value reuses the extent the old one frees. So instead of
 * deleting the segments of a dropped save (replaced, aborted or deleted checkpoint), they
 * are renamed into a pool with a TTL; a save renames pooled segments onto its own data keys
 * and SETs over them. Pooled memory that no save takes within the TTL is freed by expiry.
 *
 * Safety: a pooled segment is only ever renamed onto a data key the save has already
 * recorded in its key index, and then overwritten by the SET of that same connection; a
 * save whose SET failed does not commit, and every part is CRC-checked on load anyway.
 * Standalone Redis only: in a Cluster the pool and data keys live in different slots.
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
