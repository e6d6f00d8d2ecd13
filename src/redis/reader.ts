/**
 * RedisStorageReader: DCP's StorageReader on Redis. Loads only committed checkpoints,
 * fetches only the parts of each item that the load plan needs, and verifies the
 * checksum (XXH64 or CRC32C by format; BLAKE3 for pieces of incremental saves) of every
 * part it fetched. On a Cluster it reads master after master (clusterReadOrder).
 */
import { DcpValueError } from '../core/errors.js';
import { intOption, positiveNumberOption } from '../core/options.js';
import { metadataIndexKey, type Metadata } from '../core/metadata.js';
import { metadataFromJSON } from '../core/metadata-json.js';
import { LoadItemType, type LoadPlan, type LoadPlanner, type ReadItem } from '../core/planner.js';
import { StorageReader } from '../core/storage.js';
import { lookupChunk, reportTransferred } from '../core/storage-helpers.js';
import { copyBoxInto, storageByteRange } from '../core/tensor-box.js';
import { elementSize } from '../core/tensor.js';
import { boundedEach, ByteWindow, MAX_IN_FLIGHT, Pace, Slots } from './bounded.js';
import { DEFAULT_BULK_CONNECTIONS, MAX_BULK_CONNECTIONS } from './bulk-socket.js';
import { clusterOrderOption, inClusterOrder, openBulk, type BulkTransport } from './cluster-bulk.js';
import { isRedisCheckpointId } from './checkpoint-id.js';
import { CheckpointStore } from './checkpoint-store.js';
import type { RedisClient } from './connection.js';
import { CheckpointTarget } from './checkpoint-target.js';
import { CheckpointNotCommittedError, CheckpointNotFoundError, MissingDataError } from './errors.js';
import { DEFAULT_PREFIX, KeySpace } from './keys.js';
import { parseStorageData, storedParts, type StorageData, type StoredPart } from './layout.js';
import { dataError, partProblem, StreamedCrcs } from './verify.js';
import { BufferPool, COALESCE_GAP, isContiguous, linearOffset, type FetchGroup, type PartSpan, type PartUse, type PendingItem } from './read-parts.js';
import { LoadPin } from './load-pin.js';
import type { ClusterReadOrder, RedisStorageReaderOptions } from './reader-options.js';

export type { ClusterReadOrder, RedisStorageReaderOptions } from './reader-options.js';

export const DEFAULT_PIN_TTL_MS = 30_000;
/** Reply bytes in flight per reader unless configured: more made Redis fault in fresh reply buffers (docs/performance.md, "Issue 15"). */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;

export class RedisStorageReader extends StorageReader {
  private readonly keySpace: KeySpace;
  private readonly maxInFlight: number;
  private readonly verify: boolean;
  private readonly maxMetadataBytes: number;
  private readonly target: CheckpointTarget;
  private metadata: Metadata | undefined;
  private storage: StorageData | undefined;
  private readonly bulkTransport: boolean;
  private readonly slots: Slots;
  private readonly window: ByteWindow;
  private readonly pace: Pace;
  private readonly pool: BufferPool;
  private bulk: BulkTransport | undefined;
  private readonly bulkConnections: number;
  private readonly pinTtlMs: number;
  private readonly readIntoTensors: boolean;
  private pin: LoadPin | undefined;
  private readonly clusterReadOrder: ClusterReadOrder;
  /** This rank (setUpStorageReader): where a 'by-node' Cluster load starts. */
  private rank = 0;

  constructor(options: RedisStorageReaderOptions = {}) {
    super();
    this.keySpace = new KeySpace(options.prefix ?? DEFAULT_PREFIX);
    this.target = new CheckpointTarget(options.redis, this.keySpace, { call: 'load()', what: 'reader' });
    const readOrder = clusterOrderOption('clusterReadOrder', options.clusterReadOrder, options.redis);
    this.clusterReadOrder = readOrder.order;
    this.maxInFlight = intOption('maxInFlight', options.maxInFlight, readOrder.defaultInFlight, { max: MAX_IN_FLIGHT });
    this.verify = options.verifyChecksums ?? true;
    this.maxMetadataBytes = intOption('maxMetadataBytes', options.maxMetadataBytes, 512 * 1024 * 1024);
    this.bulkTransport = options.bulkTransport ?? true;
    this.bulkConnections = intOption('bulkConnections', options.bulkConnections, DEFAULT_BULK_CONNECTIONS, { max: MAX_BULK_CONNECTIONS });
    this.pinTtlMs = intOption('pinTtlMs', options.pinTtlMs, DEFAULT_PIN_TTL_MS, { min: 100 });
    this.slots = new Slots(this.maxInFlight);
    this.window = new ByteWindow(intOption('maxInFlightBytes', options.maxInFlightBytes, readOrder.spread ? Number.MAX_SAFE_INTEGER : DEFAULT_MAX_IN_FLIGHT_BYTES));
    this.pool = new BufferPool(this.maxInFlight);
    this.pace = new Pace(positiveNumberOption('maxBytesPerSecond', options.maxBytesPerSecond, Infinity));
    this.readIntoTensors = options.readIntoTensors ?? false;
    if (options.checkpointId !== undefined) this.reset(options.checkpointId);
  }

  static override validateCheckpointId(checkpointId: string): boolean {
    return isRedisCheckpointId(checkpointId);
  }

  reset(checkpointId?: string): void {
    void this.unpin();
    if (checkpointId !== undefined) this.target.setId(checkpointId);
    this.metadata = undefined;
    this.storage = undefined;
  }

  async readMetadata(): Promise<Metadata> {
    const store = this.store();
    const size = await this.dataClient().strlen(store.keys.meta);
    if (size > this.maxMetadataBytes) throw new DcpValueError('METADATA_INVALID', `Metadata of "${store.id}" is ${size} bytes, over the ${this.maxMetadataBytes}-byte limit`);
    // Pinned before the metadata is read: a delete that got in first makes the pin (and the load) fail.
    await this.unpin();
    this.pin = await LoadPin.take(store, this.pinTtlMs);
    const { state, metadataJson } = await store.stateAndMetadata();
    if (!state) throw new CheckpointNotFoundError(store.id);
    if (state.status !== 'committed' || metadataJson === null) throw new CheckpointNotCommittedError(store.id, state.deleting ? 'deleting' : state.status);
    const metadata = metadataFromJSON(metadataJson.toString('utf8'));
    this.storage = parseStorageData(metadata.storageData);
    this.metadata = metadata;
    return metadata;
  }

  /** Reuses the storage data checked by readMetadata when given the same metadata (parsing 50k items twice costs ~0.4 s). */
  setUpStorageReader(metadata: Metadata, _isCoordinator?: boolean, rank?: number): void {
    this.rank = rank ?? 0;
    if (metadata !== this.metadata || !this.storage) this.storage = parseStorageData(metadata.storageData);
    this.metadata = metadata;
  }

  prepareLocalPlan(plan: LoadPlan): LoadPlan {
    return plan;
  }

  prepareGlobalPlan(plans: LoadPlan[]): LoadPlan[] {
    return plans;
  }

  async readData(plan: LoadPlan, planner: LoadPlanner): Promise<void> {
    if (!this.metadata || !this.storage) throw new DcpValueError('DCP_VALUE_ERROR', 'readData before setUpStorageReader');
    this.bulk = this.bulkTransport ? await openBulk(this.dataClient(), this.bulkConnections).catch(() => undefined) : undefined;
    try {
      const uses: PartUse[] = [];
      for (const item of plan.items) this.prepareItem(item, planner, uses);
      const groups = inClusterOrder(this.dataClient(), this.clusterReadOrder, this.coalesce(uses), (g) => g.key, this.rank);
      // The first failure stops new fetches and waits for those in flight before the connection closes.
      await boundedEach(groups, this.maxInFlight, (group) => this.fetchGroup(group));
    } finally {
      this.bulk?.close();
      this.bulk = undefined;
      await this.unpin();
    }
  }

  /** The load ended (whatever the outcome): the pin goes. */
  override async endLoad(): Promise<void> {
    await this.unpin();
  }

  override async close(): Promise<void> {
    await this.unpin();
    await this.target.close();
  }

  private async unpin(): Promise<void> {
    const pin = this.pin;
    this.pin = undefined;
    await pin?.release();
  }

  /** The item's size and its stored parts (segments or pieces: the reader need not know which). */
  private location(item: ReadItem): { n: number; p: StoredPart[] } {
    const loc = this.storage!.items[metadataIndexKey(item.storageIndex)];
    if (!loc) throw new MissingDataError(item.storageIndex.fqn, '(none)', 'the checkpoint records no location for this item');
    return { n: loc.n, p: storedParts(this.storage!, this.store().keys, loc) };
  }

  private spans(loc: { p: readonly StoredPart[] }, start: number, end: number): PartSpan[] {
    const out: PartSpan[] = [];
    let pos = 0;
    for (const part of loc.p) {
      const next = pos + part.length;
      if (next > start && pos < end) out.push({ part, start: pos, end: next });
      pos = next;
    }
    return out;
  }

  /**
   * Decides, for one read item, which parts it needs and what to do with each part's
   * verified bytes; `finish` runs once all of them were applied. Destination memory is
   * resolved now, staging buffers only when the first part arrives.
   */
  private prepareItem(item: ReadItem, planner: LoadPlanner, out: PartUse[]): void {
    const fqn = item.storageIndex.fqn;
    const loc = this.location(item);
    const uses: Array<Omit<PartUse, 'item'>> = [];
    let finish: () => void;
    let moved = loc.n; // bytes this item puts into the state dict, for progress
    if (item.type === LoadItemType.BYTE_IO) {
      const value = Buffer.alloc(loc.n);
      let at = 0;
      for (const part of loc.p) {
        const start = at;
        uses.push({ fqn, part, apply: (bytes) => value.set(bytes, start) });
        at += part.length;
      }
      finish = () => planner.loadBytes(item, value);
    } else {
      const { chunk, tensor } = lookupChunk(this.metadata!, item.storageIndex);
      const elem = elementSize(tensor.properties.dtype);
      const expected = chunk.sizes.reduce((a, b) => a * b, 1) * elem;
      if (loc.n !== expected) throw new MissingDataError(fqn, '(metadata)', `chunk holds ${loc.n} bytes, its shape needs ${expected}`);
      const region = planner.resolveTensor(item);
      moved = item.lengths.reduce((a, b) => a * b, 1) * elem;
      const range = storageByteRange(chunk.sizes, item.storageOffsets, item.lengths, elem);
      const spans = range.end > range.start ? this.spans(loc, range.start, range.end) : [];
      finish = () => planner.commitTensor(item, region);
      if (spans.length > 0 && isContiguous(chunk.sizes, item.lengths) && isContiguous(region.tensor.shape, item.lengths)) {
        // Contiguous on both sides: each part lands directly in the tensor, no staging buffer.
        const dest = region.tensor.bytes;
        const destStart = linearOffset(region.tensor.shape, region.offsets) * elem;
        for (const span of spans) {
          const from = Math.max(span.start, range.start);
          const to = Math.min(span.end, range.end);
          const at = destStart + (from - range.start);
          const whole = from === span.start && to === span.end;
          uses.push({
            fqn,
            part: span.part,
            apply: (bytes) => dest.set(bytes.subarray(from - span.start, to - span.start), at),
            ...(whole ? { into: dest.subarray(at, at + span.part.length) } : {}),
          });
        }
      } else if (spans.length === 1) {
        const span = spans[0]!;
        uses.push({ fqn, part: span.part, apply: (bytes) => copyBoxInto(region, bytes, chunk.sizes, item.storageOffsets, span.start) });
      } else if (spans.length > 1) {
        let staging: Buffer | undefined;
        for (const span of spans) {
          const from = Math.max(span.start, range.start);
          const to = Math.min(span.end, range.end);
          uses.push({
            fqn,
            part: span.part,
            apply: (bytes) => {
              staging ??= Buffer.allocUnsafe(range.end - range.start);
              staging.set(bytes.subarray(from - span.start, to - span.start), from - range.start);
            },
          });
        }
        finish = () => {
          copyBoxInto(region, staging!, chunk.sizes, item.storageOffsets, range.start);
          staging = undefined;
          planner.commitTensor(item, region);
        };
      }
    }
    const apply = finish;
    finish = () => (apply(), reportTransferred(planner, moved));
    if (uses.length === 0) return finish();
    const pending: PendingItem = { remaining: uses.length, finish };
    for (const use of uses) out.push({ ...use, item: pending });
  }

  /**
   * Groups the parts by segment and merges neighbours (gaps under COALESCE_GAP) into one
   * GETRANGE each: many small items packed in a segment cost one round trip, not one each.
   */
  private coalesce(uses: PartUse[]): FetchGroup[] {
    const sorted = [...uses].sort((a, b) => (a.part.key < b.part.key ? -1 : a.part.key > b.part.key ? 1 : a.part.offset - b.part.offset));
    const groups: FetchGroup[] = [];
    let current: FetchGroup | undefined;
    for (const use of sorted) {
      const { key, offset, length } = use.part;
      if (current && current.key === key && offset - current.end <= COALESCE_GAP) {
        current.end = Math.max(current.end, offset + length);
        current.uses.push(use);
      } else {
        current = { key, start: offset, end: offset + length, uses: [use] };
        groups.push(current);
      }
    }
    return groups;
  }

  /**
   * One GETRANGE; every part in it is checked (length, checksum) before its bytes are applied.
   * Over the bulk connection the checksums are computed as the reply's bytes arrive.
   */
  private fetchGroup(group: FetchGroup): Promise<void> {
    const length = group.end - group.start;
    return this.slots.run(() => this.window.run(length, async () => {
      await this.pace.admit(length);
      const key = group.key;
      const bulk = this.bulk;
      const crcs = this.verify ? new StreamedCrcs(group.uses.map((u) => u.part), group.start) : undefined;
      const only = group.uses.length === 1 ? group.uses[0]! : undefined;
      if (this.readIntoTensors && bulk && only?.into && only.part.offset === group.start && only.part.length === length) {
        // Straight into the tensor: on a bad length or checksum the load fails (the tensor's bytes are then undefined, as with any failed load).
        const got = await bulk.getRangeInto(key, group.start, group.end - 1, only.into, crcs?.feed);
        this.check(only, key, group.start, got, only.into.subarray(0, got), crcs);
        if (--only.item.remaining === 0) only.item.finish();
        return;
      }
      let pooled: Buffer | undefined;
      let buf: Buffer;
      if (bulk) {
        pooled = this.pool.take(length);
        try {
          buf = pooled.subarray(0, await bulk.getRangeInto(key, group.start, group.end - 1, pooled, crcs?.feed));
        } catch (err) {
          this.pool.give(pooled);
          throw err;
        }
      } else {
        buf = await this.dataClient().getrangeBuffer(key, group.start, group.end - 1);
        crcs?.feed(buf);
      }
      try {
        for (const use of group.uses) {
          const from = use.part.offset - group.start;
          const bytes = buf.subarray(from, from + use.part.length);
          this.check(use, key, group.start, buf.byteLength, bytes, crcs);
          use.apply(bytes);
          if (--use.item.remaining === 0) use.item.finish();
        }
      } finally {
        if (pooled) this.pool.give(pooled);
      }
    }));
  }

  /** Throws unless `bytes` is the whole part (the fetch of `fetched` bytes from `fetchStart` reached its end) with its checksum. */
  private check(use: PartUse, key: string, fetchStart: number, fetched: number, bytes: Uint8Array, crcs: StreamedCrcs | undefined): void {
    const problem = partProblem(use.part, fetchStart, fetched, this.verify ? bytes : undefined, crcs);
    if (problem) throw dataError(problem, use.fqn, key);
  }

  private dataClient(): RedisClient {
    return this.target.client;
  }

  private store(): CheckpointStore {
    return this.target.store();
  }
}
