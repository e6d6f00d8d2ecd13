/**
 * CheckpointCatalog.usage(): what checkpoints hold in Redis (GET /usage, `redis-dcp usage`).
 * Cheap by construction: INFO memory, the catalog's state hashes (pipelined) and the
 * recycling pool's STRLENs; no scan of data keys. Bytes are the stored sizes (committed
 * totalBytes, replaced saves a load pin holds, planned bytes of unfinished saves), not
 * allocator footprints. Pieces shared by incremental checkpoints count once
 * (docs/format.md, "Incremental saves").
 */
import type { RunUsage, UsageReport } from './catalog-schemas.js';
import { readCheckpointStates } from './catalog-states.js';
import type { RedisClient } from './connection.js';
import type { KeySpace } from './keys.js';
import { redisMemory } from './memory.js';
import { pooledSegments } from './segment-pool.js';
import { storedPieceBytes } from './pieces.js';

export interface UsageOptions {
  /** Only ids starting with this. */
  readonly prefix?: string;
  /** How many run prefixes to list, largest first (default 10). */
  readonly top?: number;
}

/** "run1/step-100" → "run1/"; ids without "/" → "". */
export function runPrefixOf(id: string): string {
  const slash = id.lastIndexOf('/');
  return slash < 0 ? '' : id.slice(0, slash + 1);
}

export async function catalogUsage(client: RedisClient, keySpace: KeySpace, options: UsageOptions = {}): Promise<UsageReport> {
  const [memory, { entries, now }, pool, pieces] = await Promise.all([
    redisMemory(client),
    readCheckpointStates(client, keySpace, options.prefix ?? ''),
    pooledSegments(client, keySpace),
    storedPieceBytes(client, keySpace),
  ]);
  const share = () => ({ checkpoints: 0, bytes: 0 });
  const report = { committed: share(), writing: share(), incomplete: share() };
  let logicalBytes = 0;
  const runs = new Map<string, { prefix: string; checkpoints: number; committedBytes: number; incompleteBytes: number }>();
  for (const { id, state } of entries) {
    const prefix = runPrefixOf(id);
    const run = runs.get(prefix) ?? { prefix, checkpoints: 0, committedBytes: 0, incompleteBytes: 0 };
    runs.set(prefix, run);
    run.checkpoints++;
    logicalBytes += (state.status === 'committed' ? state.totalBytes + state.heldBytes + state.heldPieceBytes : 0) + (state.pendingSaveId ? state.pendingBytes : 0);
    if (state.status === 'committed') {
      // An incremental checkpoint holds only the pieces it added (storedBytes); shared pieces count once.
      const bytes = state.incremental ? state.storedBytes : state.totalBytes;
      report.committed.checkpoints++;
      report.committed.bytes += options.prefix || !state.incremental ? bytes : 0;
      run.committedBytes += bytes;
      // Replaced saves a load pin held at their overwrite still occupy Redis (their pieces are among the counted pieces).
      report.committed.bytes += state.heldBytes + (options.prefix ? state.heldPieceBytes : 0);
      run.committedBytes += state.heldBytes + state.heldPieceBytes;
      // An overwrite in progress (or one that died) holds its planned bytes besides the commit.
      if (state.pendingSaveId) {
        report[state.leaseUntil !== undefined && state.leaseUntil >= now ? 'writing' : 'incomplete'].bytes += state.pendingBytes;
        run.incompleteBytes += state.pendingBytes;
      }
    } else {
      report[state.status].checkpoints++;
      report[state.status].bytes += state.pendingBytes;
      run.incompleteBytes += state.pendingBytes;
    }
  }
  // Without an id filter, incremental checkpoints hold exactly the counted pieces, each once (also
  // those whose writer was deleted since, and those claimed by unfinished saves).
  if (!options.prefix) report.committed.bytes += pieces;
  const top = options.top ?? 10;
  const sorted: RunUsage[] = [...runs.values()].sort((a, b) => b.committedBytes + b.incompleteBytes - (a.committedBytes + a.incompleteBytes) || (a.prefix < b.prefix ? -1 : 1)).slice(0, top);
  return { redis: memory, ...report, logicalBytes, pooled: pool, runs: sorted };
}
