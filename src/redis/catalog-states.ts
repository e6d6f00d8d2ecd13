/**
 * Every checkpoint of the catalog index (optionally under an id prefix) with its parsed
 * state hash: the index read with ZSCAN, the state hashes pipelined a batch at a time.
 * What usage, gc and the CheckpointManager's view of a run are built on; data keys are
 * never scanned. And the batches of a catalog page (readCatalogBatch) and its size limits. See docs/format.md.
 */
import { Cluster } from 'ioredis';
import { isValidCheckpointName } from './checkpoint-id.js';
import { parseState, serverTimeMs, SUMMARY_STATE_FIELDS, type CheckpointStateRecord } from './checkpoint-store.js';
import type { RedisClient } from './connection.js';
import { hgetallMany } from './per-key.js';
import type { KeySpace } from './keys.js';
import { runScriptReply } from './scripts.js';

/** Largest page of a listing, and the default (catalog-schemas re-exports them for the API schemas). */
export const LIST_LIMIT_MAX = 1000;
export const LIST_LIMIT_DEFAULT = 100;

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

/** Catalog entries (id `m`, creation ms `s`), newest first, the state hashes of those under a prefix and the server clock. */
export interface CatalogBatch {
  readonly now: number;
  readonly entries: Array<{ readonly m: string; readonly s: number }>;
  /** Each entry's state hash, at least its SUMMARY_STATE_FIELDS (ids under the prefix with a state hash only). */
  readonly states: Map<string, Record<string, string>>;
}

function entryPairs(flat: readonly string[]): Array<{ m: string; s: number }> {
  const entries: Array<{ m: string; s: number }> = [];
  for (let i = 0; i < flat.length; i += 2) entries.push({ m: flat[i]!, s: Number(flat[i + 1]) });
  return entries;
}

/**
 * `count` catalog entries with scores ≤ `max` after skipping `offset`, newest first, with the
 * state hashes of those whose id starts with `prefix`: one call of list-page-1.lua (one round
 * trip, read only; only the hashes' SUMMARY_STATE_FIELDS) on a standalone Redis; on a Cluster,
 * whose state hashes live in other slots, TIME and ZRANGE side by side, then the hashes.
 */
export async function readCatalogBatch(client: RedisClient, keySpace: KeySpace, max: string, offset: number, count: number, prefix: string): Promise<CatalogBatch> {
  if (client instanceof Cluster) {
    const [now, flat] = await Promise.all([serverTimeMs(client), client.zrange(keySpace.catalog(), max, '-inf', 'BYSCORE', 'REV', 'LIMIT', offset, count, 'WITHSCORES')]);
    const entries = entryPairs(flat);
    const ids = entries.map((e) => e.m).filter((id) => id.startsWith(prefix) && isValidCheckpointName(id));
    const hashes = await hgetallMany(client, ids.map((id) => keySpace.checkpoint(id).state));
    return { now, entries, states: new Map(ids.map((id, i) => [id, hashes[i]!])) };
  }
  const reply = await runScriptReply(client, 'list-page', [keySpace.catalog()], [max, offset, count, prefix, ...keySpace.stateKeyAround(), ...SUMMARY_STATE_FIELDS]);
  const page = JSON.parse(String(reply)) as ListPageReply;
  // cjson encodes an empty table as {}: no entries.
  const entries = Array.isArray(page.entries) ? entryPairs(page.entries) : [];
  const states = new Map<string, Record<string, string>>();
  const found = Array.isArray(page.states) ? page.states : [];
  entries.forEach((e, i) => {
    const values = found[i];
    if (!Array.isArray(values)) return; // outside the prefix
    const state: Record<string, string> = {};
    let any = false;
    values.forEach((v, f) => {
      if (typeof v === 'string') {
        state[SUMMARY_STATE_FIELDS[f]!] = v;
        any = true;
      }
    });
    if (any) states.set(e.m, state);
  });
  return { now: page.now, entries, states };
}

/** What list-page-1.lua returns, JSON-encoded. */
interface ListPageReply {
  readonly now: number;
  readonly entries: readonly string[] | Record<string, never>;
  /** Per entry: SUMMARY_STATE_FIELDS' values (false when missing), or 0 outside the prefix. */
  readonly states: ReadonlyArray<ReadonlyArray<string | false> | 0> | Record<string, never>;
}
