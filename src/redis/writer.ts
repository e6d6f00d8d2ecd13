/**
 * RedisStorageWriter: DCP's StorageWriter on Redis. See docs/format.md for the keys and
 * the commit protocol; in short: the coordinator locks (Redlock + fencing token) before
 * global planning, every rank records its data keys and then writes them, and the
 * coordinator commits metadata + state in one fenced script.
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { DcpValueError } from '../core/errors.js';
import { intOption, positiveNumberOption } from '../core/options.js';
import { metadataIndexKey, type Metadata, type StorageMeta } from '../core/metadata.js';
import { metadataToJSON } from '../core/metadata-json.js';
import type { SavePlan, SavePlanner } from '../core/planner.js';
import { StorageWriter, type WriteResult } from '../core/storage.js';
import { reportTransferred, writeDataBytes } from '../core/storage-helpers.js';
import { isRedisCheckpointId } from './checkpoint-id.js';
import { CheckpointTarget } from './checkpoint-target.js';
import { CheckpointStore } from './checkpoint-store.js';
import { unlinkKeys } from './unlink.js';
import type { RedisClient } from './connection.js';
import { CheckpointExistsError, FencedError } from './errors.js';
import { DEFAULT_PREFIX, KeySpace } from './keys.js';
import { STORAGE_FORMAT, XXH64_STORAGE_FORMAT, type ItemLocation, type PartChecksum } from './layout.js';
import { DEFAULT_LOCK_TTL_MS, LockNodes, type HeldLock } from './lock.js';
import { boundedEach, MAX_IN_FLIGHT, Pace } from './bounded.js';
import { DEFAULT_BULK_CONNECTIONS, MAX_BULK_CONNECTIONS } from './bulk-socket.js';
import { awaitReplicas, clusterOrderOption, inClusterOrder, openBulk, type ClusterOrder } from './cluster-bulk.js';
import { DEFAULT_SEGMENT_BYTES, layoutSegments, MAX_SEGMENT_BYTES, type Segment } from './segment-layout.js';
import { SegmentPool, type SegmentRecycler } from './segment-pool.js';
import { assertMemoryFor, bytesNeeded, plannedBytes, redisMemory } from './memory.js';
import { describeWriter, writerRecipe, type RedisStorageWriterDescription } from './portable.js';
import { checksumOption, checkStepAndMetrics, type RedisStorageWriterOptions } from './writer-options.js';
import { checksumOf } from './verify.js';
import { estimateStored, writeIncremental } from './piece-writer.js';
import { releasePieces } from './pieces.js';
import { PlannedPieces } from './planned-pieces.js';
import { CLEANUP_DEADLINE_MS, within } from './deadline.js';
import { INCREMENTAL_STORAGE_FORMAT, TAGGED_INCREMENTAL_STORAGE_FORMAT, type PieceLocation, type StorageData } from './layout.js';
import type { WorkerRecipe } from '../async/recipe.js';

export { DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES, segmentSizes } from './segment-layout.js';
export { DEFAULT_MAX_IN_FLIGHT } from './bounded.js';

export { checkStepAndMetrics, type RedisStorageWriterOptions } from './writer-options.js';

/** What the coordinator hands every rank in its global plan. */
interface SaveTicket {
  readonly saveId: string;
  readonly rank: number;
}

function newSaveId(): string {
  return randomBytes(9).toString('base64url');
}

export class RedisStorageWriter extends StorageWriter {
  private readonly keySpace: KeySpace;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly segmentBytes: number;
  private readonly overwrite: boolean;
  private readonly maxInFlight: number;
  private readonly maxBytesPerSecond: number;
  private readonly clusterWriteOrder: ClusterOrder;
  private readonly bulkTransport: boolean;
  private readonly bulkConnections: number;
  private readonly recycleTtlMs: number;
  private readonly lockNodes: LockNodes;
  private readonly incremental: boolean;
  private readonly checksum: PartChecksum;

  private readonly target: CheckpointTarget;
  private saveId = newSaveId();
  private isCoordinator = false;
  private token: string | undefined;
  private held: HeldLock | undefined;
  private begun = false;
  private committed = false;
  private writtenKeys: string[] = [];
  /** The save id from the coordinator's ticket (on every rank, once writeData started). */
  private writingSaveId: string | undefined;
  /** Piece ids hashed by this save's memory pre-flight (prepareLocalPlan), taken by its writeData. */
  private planned: PlannedPieces | undefined;

  constructor(private readonly options: RedisStorageWriterOptions = {}) {
    super();
    this.keySpace = new KeySpace(options.prefix ?? DEFAULT_PREFIX);
    this.lockTtlMs = intOption('lockTtlMs', options.lockTtlMs, DEFAULT_LOCK_TTL_MS);
    this.lockWaitMs = intOption('lockWaitMs', options.lockWaitMs, 0, { min: 0 });
    if (options.segmentBytes !== undefined && options.chunkBytes !== undefined && options.segmentBytes !== options.chunkBytes) {
      throw new DcpValueError('DCP_VALUE_ERROR', 'segmentBytes and its deprecated alias chunkBytes disagree; pass only segmentBytes');
    }
    this.segmentBytes = intOption(options.segmentBytes === undefined ? 'chunkBytes' : 'segmentBytes', options.segmentBytes ?? options.chunkBytes, DEFAULT_SEGMENT_BYTES, { max: MAX_SEGMENT_BYTES });
    this.overwrite = options.overwrite ?? true;
    const writeOrder = clusterOrderOption('clusterWriteOrder', options.clusterWriteOrder, options.redis);
    this.clusterWriteOrder = writeOrder.order;
    this.maxInFlight = intOption('maxInFlight', options.maxInFlight, writeOrder.defaultInFlight, { max: MAX_IN_FLIGHT });
    this.maxBytesPerSecond = positiveNumberOption('maxBytesPerSecond', options.maxBytesPerSecond, Infinity);
    this.bulkTransport = options.bulkTransport ?? true;
    this.bulkConnections = intOption('bulkConnections', options.bulkConnections, DEFAULT_BULK_CONNECTIONS, { max: MAX_BULK_CONNECTIONS });
    this.recycleTtlMs = intOption('recycleTtlMs', options.recycleTtlMs, 0, { min: 0 });
    checkStepAndMetrics(options.step, options.metrics);
    this.incremental = options.incremental ?? false;
    this.checksum = checksumOption(options.checksum);
    this.target = new CheckpointTarget(options.redis, this.keySpace, { call: 'save()', what: 'writer' });
    this.lockNodes = new LockNodes(options.lockRedis, () => this.dataClient());
    if (options.checkpointId !== undefined) this.reset(options.checkpointId);
  }

  /** Everything needed to build an equivalent writer elsewhere (connection URL or client options, TLS, prefix, options) as plain data. */
  describe(): RedisStorageWriterDescription {
    return describeWriter(this.options);
  }

  /** asyncSave's hook: the worker thread rebuilds this writer from its description, with its own connections. */
  workerRecipe(): WorkerRecipe {
    return writerRecipe(this.options);
  }

  /** True for bare namespaces ("run1/step-100") and redis:// URLs carrying one. */
  static override validateCheckpointId(checkpointId: string): boolean {
    return isRedisCheckpointId(checkpointId);
  }

  /** A new save: validates the id (before any key is touched) and draws a new save id. */
  reset(checkpointId?: string): void {
    if (checkpointId !== undefined) this.target.setId(checkpointId);
    this.saveId = newSaveId();
    this.token = undefined;
    this.held = undefined;
    this.begun = false;
    this.committed = false;
    this.writtenKeys = [];
    this.writingSaveId = undefined;
    this.planned = undefined;
  }

  override storageMeta(): StorageMeta {
    return { checkpointId: this.target.id, saveId: this.saveId };
  }

  async setUpStorageWriter(isCoordinator: boolean): Promise<void> {
    this.isCoordinator = isCoordinator;
    const store = this.store();
    if (!isCoordinator) return;
    const held = await this.lockNodes.acquire(store.keys.lock, store.id, { ttlMs: this.lockTtlMs, waitMs: this.lockWaitMs });
    this.held = held;
    const token = await store.nextToken();
    this.token = token;
    // Extended from now on, not from global planning: the other ranks' local plans may take
    // longer than the TTL to arrive. The lease exists once begin-save ran.
    held.startAutoExtend((leaseMs) => (this.held === held && this.begun ? store.extendLease(token, leaseMs) : Promise.resolve()));
  }

  async prepareLocalPlan(plan: SavePlan, planner?: SavePlanner): Promise<SavePlan> {
    this.planned = undefined;
    if (!this.overwrite) {
      const state = await this.store().state();
      if (state?.status === 'committed') throw new CheckpointExistsError(this.store().id);
    }
    // Incremental memory pre-flight (when Redis has a maxmemory): what this rank will store, i.e. its new pieces.
    if (!this.incremental || !planner || !(this.options.memoryCheck ?? true) || (await redisMemory(this.dataClient())).maxMemory === null) return plan;
    const items = plan.items.map((item) => writeDataBytes(planner.resolveData(item)));
    const planned = new PlannedPieces();
    const stored = await estimateStored(items, plan.items.map((i) => metadataIndexKey(i.index)), this.dataClient(), this.keySpace, this.segmentBytes, this.options.pieceIdCache ?? true, planned);
    this.planned = planned; // writeData of this save reuses these ids for the same byte views
    return { ...plan, storageData: { stored } };
  }

  /** Coordinator, under the lock: claims the checkpoint for this save and hands every rank its ticket. */
  async prepareGlobalPlan(plans: SavePlan[]): Promise<SavePlan[]> {
    const store = this.store();
    const held = this.requireLock();
    // Memory pre-flight: a save that cannot fit fails here, before begin-save and before any byte is written.
    const bytes = plannedBytes(plans);
    if (this.options.memoryCheck ?? true) {
      const pool = this.bulkTransport ? this.pool() : undefined;
      const needed = bytesNeeded(plans, { segmentBytes: this.segmentBytes, maxInFlight: this.maxInFlight, incremental: this.incremental });
      await assertMemoryFor(this.dataClient(), store.id, needed, pool ? await pool.bytes() : 0);
    }
    await store.beginSave(this.token!, this.saveId, held.remainingMs, plans.length, this.overwrite, bytes);
    this.begun = true;
    return plans.map((plan, rank) => ({ ...plan, storageData: { saveId: this.saveId, rank } satisfies SaveTicket }));
  }

  async writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
    const ticket = plan.storageData as SaveTicket | undefined;
    if (!ticket || typeof ticket.saveId !== 'string' || !Number.isInteger(ticket.rank)) throw new DcpValueError('DCP_VALUE_ERROR', 'writeData needs a plan from RedisStorageWriter.prepareGlobalPlan');
    this.writingSaveId = ticket.saveId;
    const store = this.store();
    // One stream per rank (items back to back) cut into segments whose sizes sit just
    // under allocator size classes: a 2 MiB tensor alone in a value would cost 2.5 MiB.
    const items = plan.items.map((item) => writeDataBytes(planner.resolveData(item)));
    const pace = new Pace(this.maxBytesPerSecond); // this save's data writes, segments or new pieces
    if (this.incremental) {
      const planned = this.planned;
      this.planned = undefined; // for this save only: holds views of its tensors
      const ctx = { client: this.dataClient(), keySpace: this.keySpace, keys: store.keys, saveId: ticket.saveId, pieceBytes: this.segmentBytes, maxInFlight: this.maxInFlight, idCache: this.options.pieceIdCache ?? true, planned, order: this.clusterWriteOrder, rank: ticket.rank, pace };
      return writeIncremental(plan.items, items, ctx, this.bulkTransport ? this.bulkConnections : 0);
    }
    const { segments, locations } = layoutSegments(items, this.segmentBytes, ticket.rank, (seq) => store.keys.dataKey(ticket.saveId, ticket.rank, seq));

    // Keys are recorded before any is written: an aborted save leaves nothing unfindable.
    const keys = segments.map((s) => s.key);
    await store.recordDataKeys(ticket.saveId, keys);
    this.writtenKeys = keys;
    const client = this.dataClient();
    const bulk = this.bulkTransport ? await openBulk(client, this.bulkConnections).catch(() => undefined) : undefined;
    const pool = bulk ? this.pool() : undefined;
    const full = segments.filter((s) => s.capacity === this.segmentBytes);
    const pooled = new Map<Segment, string>();
    if (pool) (await pool.takeFor(full.map((s) => s.key))).forEach((name, i) => name !== undefined && pooled.set(full[i]!, name));
    try {
      await boundedEach(inClusterOrder(client, this.clusterWriteOrder, segments, (seg) => seg.key, ticket.rank), this.maxInFlight, async (seg) => {
        await pace.admit(seg.size);
        const buffers = seg.pieces.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
        // The bulk connection writes the tensors' own memory; ioredis would copy each value once more.
        const written = bulk ? bulk.set(seg.key, buffers, pooled.get(seg)) : client.set(seg.key, buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers, seg.size));
        // Checksums only go into the metadata, so they are computed while Redis takes in the segment.
        seg.parts.forEach((part, i) => (part[4] = checksumOf(this.checksum, buffers[i]!)));
        await written;
        reportTransferred(planner, seg.size);
      });
      await awaitReplicas(client, bulk); // a Cluster's replicas hold the segments before the commit
    } finally {
      bulk?.close();
    }

    // `ck` on a rank's first result (dropped at the commit) lets the coordinator check every rank checksummed as the format it records says.
    return plan.items.map((item, i) => ({ index: item.index, sizeInBytes: locations[i]!.n, storageData: i === 0 ? { ...(locations[i] as ItemLocation), ck: this.checksum } : locations[i] }));
  }

  /** Coordinator: commits (fenced, lease checked), then removes the data of replaced saves (unless a load pin holds them). */
  async finish(metadata: Metadata, results: WriteResult[][]): Promise<void> {
    const store = this.store();
    const held = this.requireLock();
    if (held.lost) throw new FencedError(store.id, `lock lost before commit (${held.lost.message})`);
    const items: Record<string, ItemLocation | PieceLocation> = {};
    let totalBytes = 0;
    let storedBytes = 0;
    for (const result of results.flat()) {
      const { w, ck, ...location } = result.storageData as (ItemLocation | PieceLocation) & { w?: number; ck?: PartChecksum };
      if (ck !== undefined && ck !== this.checksum) throw new DcpValueError('DCP_VALUE_ERROR', `ranks were configured with different checksums (${ck} and ${this.checksum}): give every rank's writer the same checksum option`);
      items[metadataIndexKey(result.index)] = location;
      totalBytes += result.sizeInBytes;
      storedBytes += w ?? 0;
    }
    const segmentFormat = this.checksum === 'xxh64' ? XXH64_STORAGE_FORMAT : STORAGE_FORMAT;
    const format = !this.incremental ? segmentFormat : this.dataClient() instanceof Cluster ? TAGGED_INCREMENTAL_STORAGE_FORMAT : INCREMENTAL_STORAGE_FORMAT;
    const storageData = { format, saveId: this.saveId, items } as StorageData;
    const json = metadataToJSON({ ...metadata, storageData });
    const { garbage } = await store.commit(this.token!, this.saveId, json, {
      worldSize: results.length,
      totalBytes,
      storedBytes: this.incremental ? storedBytes : totalBytes,
      incremental: this.incremental,
      itemCount: Object.keys(metadata.stateDictMetadata).length,
      step: this.options.step,
      metrics: this.options.metrics,
    });
    this.committed = true;
    // None while a load pins the checkpoint: the replaced save stays for it (docs/format.md, "Load pins").
    for (const saveId of garbage) {
      await store.dropSave(this.token!, saveId, this.pool()).catch(() => {}); // retried by the next commit, a delete or gc
    }
    await held.release();
    // A writer used again without a checkpoint id (so without reset) must not write over this save's keys.
    this.reset();
  }

  /**
   * A failed save, on every rank: gives the save up, then drops its data. The data goes
   * only once abort-save said the save can no longer commit; a save that did commit
   * (the failure came later, e.g. a lost reply or a failed final broadcast) is kept.
   */
  override async abort(): Promise<void> {
    this.planned = undefined;
    try {
      if (this.committed || this.target.id === undefined) return;
      const saveId = this.isCoordinator ? (this.begun ? this.saveId : undefined) : this.writingSaveId;
      if (saveId === undefined) return;
      const store = this.store();
      // Committed, or Redis unreachable within the cleanup deadline: remove nothing (gc collects an incomplete save).
      const outcome = await within(store.abortSave(saveId).catch(() => undefined), CLEANUP_DEADLINE_MS);
      if (outcome !== 'aborted') return;
      const pool = this.pool();
      if (this.isCoordinator) await store.dropSave(this.token!, saveId, pool).catch(() => {});
      else if (this.writtenKeys.length > 0) await (pool ? pool.retire(this.writtenKeys) : unlinkKeys(this.dataClient(), this.writtenKeys)).catch(() => {});
      else if (this.incremental) await releasePieces(this.dataClient(), this.keySpace, store.keys, saveId).catch(() => {});
    } finally {
      await this.held?.release();
      this.reset(); // the next save through this writer gets a new save id
    }
  }

  override async close(): Promise<void> {
    await this.held?.release();
    await this.lockNodes.close();
    await this.target.close();
  }

  private requireLock(): HeldLock {
    if (!this.held || this.token === undefined) throw new DcpValueError('DCP_VALUE_ERROR', 'the coordinator holds no lock: setUpStorageWriter(true) must run first');
    return this.held;
  }

  private dataClient(): RedisClient {
    return this.target.client;
  }

  private pool(): SegmentRecycler | undefined {
    return SegmentPool.for(this.dataClient(), this.keySpace, this.recycleTtlMs);
  }

  private store(): CheckpointStore {
    return this.target.store();
  }
}
