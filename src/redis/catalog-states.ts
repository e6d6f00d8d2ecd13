/**
 * Every checkpoint of the catalog index (optionally under an id prefix) with its parsed
 * state hash: the index read with ZSCAN, the state hashes pipelined a batch at a time.
 * What usage, gc and the CheckpointManager's view of a run are built on; data keys are
 * never scanned. See docs/format.md.
 */
import { isValidCheckpointName } from './checkpoint-id.js';
import { hgetallMany, parseState, serverTimeMs, type CheckpointStateRecord } from './checkpoint-store.js';
import type { RedisClient } from './connection.js';
import type { KeySpace } from './keys.js';

export interface CheckpointEntry {
  readonly id: string;
  readonly state: CheckpointStateRecord;
}

/** Checkpoints whose id starts with `prefix` (stale index entries skipped), and the server time they were read at. */
export async function readCheckpointStates(client: RedisClient, keySpace: KeySpace, prefix = ''): Promise<{ entries: CheckpointEntry[]; now: number }> {
  const now = await serverTimeMs(client);
  const seen = new Set<string>();
  const entries: CheckpointEntry[] = [];
  let cursor = '0';
  do {
    const [next, flat] = await client.zscan(keySpace.catalog(), cursor, 'COUNT', 1000);
    cursor = next;
    const ids = flat.filter((id, i) => i % 2 === 0 && id.startsWith(prefix) && !seen.has(id) && isValidCheckpointName(id));
    ids.forEach((id) => seen.add(id));
    const hashes = await hgetallMany(client, ids.map((id) => keySpace.checkpoint(id).state));
    ids.forEach((id, i) => {
      const state = parseState(hashes[i]!, now);
      if (state) entries.push({ id, state });
    });
  } while (cursor !== '0');
  return { entries, now };
}
