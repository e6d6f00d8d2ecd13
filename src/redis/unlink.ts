/**
 * Removing data keys without stalling Redis: Redis frees a string value in its main thread
 * even under UNLINK (only collections go to the lazy-free thread), and a freed large value
 * goes back to the kernel at once. One UNLINK of 256 one-MiB segments held every other
 * client for 16–33 ms here. So keys go in sequential UNLINKs of at most UNLINK_BUDGET_BYTES
 * of values each, sized with a pipelined STRLEN first. See docs/performance.md, "Session 6".
 */
import { Cluster } from 'ioredis';
import type { RedisClient } from './connection.js';
import { integersPerKey } from './per-key.js';

/** Bytes of values one UNLINK frees at most (~0.5–1 ms of Redis' main thread here; 16 MiB left a few 4–8 ms stalls). */
export const UNLINK_BUDGET_BYTES = 8 * 1024 * 1024;
/** Keys sized (STRLEN) per round trip, and keys per UNLINK at most (small values). */
const SIZE_BATCH = 500;

/** Unlinks `keys` (missing ones are no error); returns how many existed. */
export async function unlinkKeys(client: RedisClient, keys: readonly string[], budgetBytes = UNLINK_BUDGET_BYTES): Promise<number> {
  let removed = 0;
  for (let i = 0; i < keys.length; i += SIZE_BATCH) {
    const chunk = keys.slice(i, i + SIZE_BATCH);
    const sizes = await integersPerKey(client, 'strlen', chunk, 0); // 0: missing, or not a string
    for (const batch of byBudget(chunk, sizes, budgetBytes)) removed += await unlinkBatch(client, batch);
  }
  return removed;
}

/**
 * Consecutive runs of `keys` whose sizes add up to at most `budgetBytes` (a key larger than
 * the budget goes alone), each run at most SIZE_BATCH keys.
 */
export function byBudget(keys: readonly string[], sizes: readonly number[], budgetBytes: number): string[][] {
  const out: string[][] = [];
  let run: string[] = [];
  let bytes = 0;
  keys.forEach((key, i) => {
    const size = sizes[i] ?? 0;
    if (run.length > 0 && (bytes + size > budgetBytes || run.length >= SIZE_BATCH)) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(key);
    bytes += size;
  });
  if (run.length > 0) out.push(run);
  return out;
}

/** One multi-key UNLINK on a single node; per key in a Cluster (the keys span slots). */
async function unlinkBatch(client: RedisClient, batch: readonly string[]): Promise<number> {
  if (!(client instanceof Cluster)) return client.unlink(...batch);
  const counts = await Promise.all(batch.map((k) => client.unlink(k)));
  return counts.reduce((a, b) => a + b, 0);
}
