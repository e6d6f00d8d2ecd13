/**
 * The options of RedisStorageReader (and what CheckpointManager passes through as readerOptions).
 * See README "Options" and docs/performance.md for the defaults' measurements.
 */
import type { ClusterOrder } from './cluster-bulk.js';
import type { RedisInput } from './connection.js';

/** RedisStorageReaderOptions.clusterReadOrder. */
export type ClusterReadOrder = ClusterOrder;

export interface RedisStorageReaderOptions {
  readonly redis?: RedisInput;
  readonly checkpointId?: string;
  readonly prefix?: string;
  /** Parts fetched in flight per rank (default 4; 8 on a Redis Cluster client read `'by-key'`). */
  readonly maxInFlight?: number;
  /**
   * Bytes of replies asked for and not yet received per rank (default 8 MiB, two segments; one larger
   * fetch runs alone). On a Cluster client read `'by-key'` it is not applied by default.
   */
  readonly maxInFlightBytes?: number;
  /**
   * Pace this rank's data reads to at most this many bytes per second (default: no limit), for a
   * load that must not crowd out Redis' other clients, e.g. an evaluation job beside training:
   * each GETRANGE starts once the bytes before it are spread at this rate. Per rank; metadata is not paced.
   */
  readonly maxBytesPerSecond?: number;
  /**
   * The order of a Cluster load's reads (no effect on a standalone Redis). `'by-node'` (default):
   * master after master, each rank starting at its own (rank mod masters), so that one rank keeps
   * one master busy like a standalone Redis and many ranks spread over the masters. `'by-key'`:
   * in key order, every master busy at once (then maxInFlight defaults to 8 and maxInFlightBytes
   * to none), for a single rank on a multi-host cluster whose masters each serve less than its
   * link. docs/performance.md, "Redis Cluster".
   */
  readonly clusterReadOrder?: ClusterReadOrder;
  /** Verify every fetched part's checksum (XXH64 or CRC32C, by format; default true). */
  readonly verifyChecksums?: boolean;
  /** Largest metadata document accepted (default 512 MiB). */
  readonly maxMetadataBytes?: number;
  /**
   * Read segment bytes over a second, bulk-only connection into reused buffers (default
   * true; on a Cluster, connections to every master, each read from its slot's master).
   */
  readonly bulkTransport?: boolean;
  /** Bulk connections used side by side when `bulkTransport` is on (default 1, at most 16). */
  readonly bulkConnections?: number;
  /**
   * Let the kernel write a part that is one contiguous run of a tensor straight into the tensor
   * (default false: parts arrive in a few reused receive buffers, are verified there and then
   * copied in). Straight in saves that copy, but a damaged part then lands in the tensor before
   * the load fails, and where the kernel's first write into a page is expensive (as on the
   * virtual machines measured in docs/performance.md, "Receive buffers") a first load into
   * tensors was 4× slower.
   */
  readonly readIntoTensors?: boolean;
  /**
   * Lease of the load pin (default 30 s): from readMetadata until the load ends the
   * checkpoint is pinned (delete, retention and gc refuse it with CHECKPOINT_IN_USE); the
   * pin is extended every third of this while the load runs and expires this long after
   * a process that died (docs/format.md, "Load pins").
   */
  readonly pinTtlMs?: number;
}
