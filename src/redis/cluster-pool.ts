/**
 * Segment recycling on Redis Cluster: one pool per master. A pooled and a data key cannot
 * share a slot (data keys carry no hash tag), so nothing is renamed: a retired data key keeps
 * its name, gets the pool TTL and is listed in its master's pool set `P:pool:{n<i>}` (the
 * first tag whose slot that master owns); a save takes names from the pool of each segment's
 * master and its bulk connection DELs one right before the SET, so Redis reuses the freed
 * memory (measured: as few page faults as RENAME + SET). See docs/format.md, "Segment recycling".
 */
import type { Cluster } from 'ioredis';
import { keySlot, masterOf } from './cluster-bulk.js';
import type { KeySpace } from './keys.js';
import type { SegmentRecycler } from './segment-pool.js';

/** Commands in flight per retire or STRLEN batch. */
const BATCH = 256;
/** Tags tried for a master's pool set (a master owning a single slot needs ~16k). */
const MAX_TAG_SEARCH = 1 << 20;

/** The masters ("host:port") of the current slot map. */
function masters(cluster: Cluster): string[] {
  return [...new Set(cluster.slots.map((owners) => owners?.[0]).filter((k): k is string => k !== undefined))];
}

/** `master`'s pool set in the current slot map: the first `P:pool:{n<i>}` whose slot it owns. */
export function poolSetOf(cluster: Cluster, keySpace: KeySpace, master: string): string | undefined {
  for (let i = 0; i < MAX_TAG_SEARCH; i++) {
    const key = keySpace.segmentPoolOn(`n${i}`);
    if (cluster.slots[keySlot(key)]?.[0] === master) return key;
  }
  return undefined;
}

export class ClusterPool implements SegmentRecycler {
  private readonly sets = new Map<string, string | undefined>();

  constructor(
    private readonly cluster: Cluster,
    private readonly keySpace: KeySpace,
    readonly ttlMs: number,
  ) {}

  /** Gives each data key the pool TTL (TTL first: a retired key never lives on without one), then lists it in its master's pool. */
  async retire(dataKeys: readonly string[]): Promise<number> {
    let moved = 0;
    for (const [master, keys] of this.byMaster(dataKeys)) {
      const expiring: string[] = [];
      for (let i = 0; i < keys.length; i += BATCH) {
        const batch = keys.slice(i, i + BATCH);
        const replies = await Promise.all(batch.map((k) => this.cluster.pexpire(k, this.ttlMs)));
        batch.forEach((k, j) => replies[j] === 1 && expiring.push(k));
      }
      const set = this.setOf(master);
      if (expiring.length === 0 || set === undefined) continue;
      for (let i = 0; i < expiring.length; i += BATCH) await this.cluster.sadd(set, ...expiring.slice(i, i + BATCH));
      await this.cluster.pexpire(set, this.ttlMs);
      moved += expiring.length;
    }
    return moved;
  }

  async bytes(): Promise<number> {
    return (await pooledClusterSegments(this.cluster, this.keySpace, 100_000)).bytes;
  }

  /** Per master, up to as many pooled names as that master's data keys (SPOP: each taken once). */
  async takeFor(dataKeys: readonly string[]): Promise<Array<string | undefined>> {
    const taken = new Map<string, string>();
    await Promise.all(
      [...this.byMaster(dataKeys)].map(async ([master, keys]) => {
        const set = this.setOf(master);
        const names = set === undefined ? [] : ((await this.cluster.spop(set, keys.length)) ?? []);
        names.forEach((name, i) => taken.set(keys[i]!, name));
      }),
    );
    return dataKeys.map((k) => taken.get(k));
  }

  private setOf(master: string): string | undefined {
    if (!this.sets.has(master)) this.sets.set(master, poolSetOf(this.cluster, this.keySpace, master));
    return this.sets.get(master);
  }

  private byMaster(keys: readonly string[]): Map<string, string[]> {
    const groups = new Map<string, string[]>();
    for (const key of keys) {
      const master = masterOf(this.cluster, key);
      const group = groups.get(master);
      if (group) group.push(key);
      else groups.set(master, [key]);
    }
    return groups;
  }
}

/** Segments in every master's pool and their bytes (expired ones count 0), bounded by `limit` members. */
export async function pooledClusterSegments(cluster: Cluster, keySpace: KeySpace, limit: number): Promise<{ segments: number; bytes: number }> {
  const names: string[] = [];
  for (const master of masters(cluster)) {
    const set = poolSetOf(cluster, keySpace, master);
    if (set === undefined) continue;
    let cursor = '0';
    do {
      const [next, batch] = await cluster.sscan(set, cursor, 'COUNT', 1000);
      cursor = next;
      names.push(...batch);
    } while (cursor !== '0' && names.length < limit);
  }
  let segments = 0;
  let bytes = 0;
  for (let i = 0; i < names.length; i += BATCH) {
    for (const n of await Promise.all(names.slice(i, i + BATCH).map((name) => cluster.strlen(name).catch(() => 0)))) {
      if (n > 0) segments++;
      bytes += n;
    }
  }
  return { segments, bytes };
}
