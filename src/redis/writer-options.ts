/**
 * The options of RedisStorageWriter (and what CheckpointManager passes through), with the
 * checks of the step and metrics a save records. See README "Options" and docs/format.md.
 */
import { DcpValueError } from '../core/errors.js';
import { choiceOption } from '../core/options.js';
import type { ClusterOrder } from './cluster-bulk.js';
import type { RedisInput } from './connection.js';
import type { PartChecksum } from './layout.js';

/** RedisStorageWriterOptions.clusterWriteOrder. */
export type ClusterWriteOrder = ClusterOrder;

export interface RedisStorageWriterOptions {
  /** Data connection: an ioredis Redis or Cluster, or a redis:// URL (then the writer owns and closes it). */
  readonly redis?: RedisInput;
  readonly checkpointId?: string;
  /** Key prefix (default "dcp"). */
  readonly prefix?: string;
  /** Independent nodes for the Redlock quorum (default: the data connection). */
  readonly lockRedis?: readonly RedisInput[];
  /** Lock TTL; the lock is extended every ttl/3 while the save runs (default 30 s). */
  readonly lockTtlMs?: number;
  /** How long to wait for another save's lock before failing with CHECKPOINT_LOCKED (default 0). */
  readonly lockWaitMs?: number;
  /** Segment size: the largest Redis value written (default 1 MiB − 64 B, at most 512 MiB). */
  readonly segmentBytes?: number;
  /** @deprecated Old name of `segmentBytes`; still accepted. */
  readonly chunkBytes?: number;
  /** Replace an existing checkpoint (DCP's default) or fail with CHECKPOINT_EXISTS. */
  readonly overwrite?: boolean;
  /** SETs in flight per rank (default 4; 8 on a Redis Cluster client written `'by-key'`). */
  readonly maxInFlight?: number;
  /**
   * Pace this rank's data writes to at most this many bytes per second (default: no limit). A save
   * that must not crowd out Redis' other clients (the admin API, a trainer's own keys) or a shared
   * link: each segment, or new piece of an incremental save, starts once the bytes before it are
   * spread at this rate. Per rank: N ranks write up to N × this, and a rank that finishes early
   * waits at the commit for the slowest (keep the process group's timeoutMs above the difference of
   * their bytes ÷ this rate). Metadata, claims and the commit are not paced; loads have the
   * reader's own maxBytesPerSecond (docs/performance.md, "Pacing a save").
   */
  readonly maxBytesPerSecond?: number;
  /**
   * The order of a Cluster save's writes (no effect on a standalone Redis). `'by-node'` (default):
   * master after master, each rank starting at its own (rank mod masters), so that each master
   * takes its segments in one run. On one host, masters faulting in fresh memory side by side
   * left it costly to read back: the first load after a save was 0.70–0.81× standalone, 1.10×
   * written by node (docs/performance.md, "Session 8"). `'by-key'`: every master busy at once
   * (8 in flight by default), for a single rank on a multi-host cluster. An incremental save
   * orders the writes of each claimed batch of new pieces (at most 64) the same way.
   */
  readonly clusterWriteOrder?: ClusterWriteOrder;
  /**
   * Write segments over a second, bulk-only connection straight from the tensors' memory
   * (default true; on a Cluster, connections to every master, each segment to its slot's master).
   */
  readonly bulkTransport?: boolean;
  /** Bulk connections used side by side (per master on a Cluster) when `bulkTransport` is on (default 1, at most 16). */
  readonly bulkConnections?: number;
  /**
   * Segment recycling (default 0 = off; needs the bulk connection; on a Cluster a pool per master): data of
   * saves this writer drops (replaced or aborted) is kept in a pool for this long, and new
   * segments are written over pooled ones, reusing memory Redis already holds instead of
   * faulting in fresh pages. Set it above the interval between checkpoints to benefit;
   * dropped data then stays in Redis' memory until a save takes it or the TTL ends. Give the
   * CheckpointCatalog the same value so that deleted checkpoints feed the pool too.
   */
  readonly recycleTtlMs?: number;
  /** The training step this save is (recorded with the commit; CheckpointManager sets it). */
  readonly step?: number;
  /** Metrics of this step, e.g. { loss: 0.31 } (recorded with the commit; finite numbers). */
  readonly metrics?: Readonly<Record<string, number>>;
  /**
   * Memory pre-flight (default true): before a byte is written the coordinator compares the
   * bytes of the global plan (incremental: of its new pieces) with maxmemory − used_memory; INSUFFICIENT_MEMORY.
   */
  readonly memoryCheck?: boolean;
  /**
   * How segment parts are checksummed (default 'xxh64': the low 32 bits of XXH64, format
   * redis-dcp/4). 'crc32c' writes format redis-dcp/1, which redis-dcp versions before
   * session 7 can also read; both are read by this version (docs/format.md, "Data segments").
   * Incremental saves check pieces by BLAKE3 and ignore this.
   */
  readonly checksum?: PartChecksum;
  /** Incremental save (default false; standalone Redis or Cluster): content-addressed pieces; a piece already stored under this prefix is referenced, not written again (docs/format.md). */
  readonly incremental?: boolean;
  /**
   * Incremental saves (default true): a piece whose XXH64 equals that of the bytes this process last
   * saved at the same position reuses their BLAKE3 id instead of hashing again (an unchanged state dict
   * saves ~3× faster). false: every piece is hashed with BLAKE3, so an unchanged piece is found by its
   * 128-bit cryptographic hash alone (docs/format.md, "Unchanged pieces are found by XXH64").
   */
  readonly pieceIdCache?: boolean;
}

/** The checksum option, checked (DCP_VALUE_ERROR for anything else). */
export function checksumOption(value: unknown): PartChecksum {
  return choiceOption('checksum', value, ['xxh64', 'crc32c'], 'xxh64');
}

/** Metrics names: like FQN segments; values finite numbers; at most 64 of them. */
const METRIC_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;

export function checkStepAndMetrics(step: number | undefined, metrics: Readonly<Record<string, number>> | undefined): void {
  if (step !== undefined && (!Number.isSafeInteger(step) || step < 0)) throw new DcpValueError('DCP_VALUE_ERROR', `step must be a non-negative integer (got ${String(step)})`);
  if (metrics === undefined) return;
  if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) throw new DcpValueError('DCP_VALUE_ERROR', 'metrics must be an object of numbers');
  const entries = Object.entries(metrics);
  if (entries.length > 64) throw new DcpValueError('DCP_VALUE_ERROR', `metrics may hold at most 64 values (got ${entries.length})`);
  for (const [name, value] of entries) {
    if (!METRIC_NAME.test(name)) throw new DcpValueError('DCP_VALUE_ERROR', `metric name ${JSON.stringify(name.slice(0, 40))} must be 1-128 letters, digits or . _ : / -`);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new DcpValueError('DCP_VALUE_ERROR', `metric ${name} must be a finite number (got ${String(value)})`);
  }
}
