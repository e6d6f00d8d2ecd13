/**
 * RedisStorageReader: DCP's StorageReader on Redis. Loads only committed checkpoints,
 * fetches only the parts of each item that the load plan needs, and verifies the
 * CRC32C of every part it fetched before a byte of it reaches a tensor.
 */
import { crc32c } from '@node-rs/crc32';
import { DcpValueError } from '../core/errors.js';
import { metadataIndexKey, type Metadata } from '../core/metadata.js';
import { metadataFromJSON } from '../core/metadata-json.js';
import { LoadItemType, type LoadPlan, type LoadPlanner, type ReadItem } from '../core/planner.js';
import { StorageReader } from '../core/storage.js';
import { lookupChunk } from '../core/storage-helpers.js';
import { copyBoxInto, storageByteRange, stridesOf } from '../core/tensor-box.js';
import { elementSize } from '../core/tensor.js';
import { boundedEach, Slots } from './bounded.js';
import { BufferPool, BulkSocket } from './bulk-socket.js';
import { isRedisCheckpointId, parseCheckpointId } from './checkpoint-id.js';
import { CheckpointStore } from './checkpoint-store.js';
import { closeClient, connect, type RedisClient, type RedisInput } from './connection.js';
import { CheckpointNotCommittedError, CheckpointNotFoundError, ChecksumMismatchError, MissingDataError } from './errors.js';
import { DEFAULT_PREFIX, KeySpace } from './keys.js';
import { parseStorageData, type ItemLocation, type Part, type RedisStorageData } from './layout.js';

export interface RedisStorageReaderOptions {
  readonly redis?: RedisInput;
  readonly checkpointId?: string;
  readonly prefix?: string;
  /** Parts fetched in flight per rank (default 4). */
  readonly maxInFlight?: number;
  /** Verify every fetched part's CRC32C (default true). */
  readonly verifyChecksums?: boolean;
  /** Largest metadata document accepted (default 512 MiB). */
  readonly maxMetadataBytes?: number;
  /**
   * Read segment bytes over a second, bulk-only connection into reused buffers (default
   * true; only for a standalone `Redis`, Cluster always goes through ioredis).
   */
  readonly bulkTransport?: boolean;
}

/** A part of an item with its byte span inside the item. */
interface PartSpan {
  readonly part: Part;
  readonly start: number;
  readonly end: number;
}

/** Whether a box is one contiguous run in a row-major tensor of `shape`. */
function isContiguous(shape: readonly number[], lengths: readonly number[]): boolean {
  let d = shape.length - 1;
  while (d > 0 && lengths[d] === shape[d]) d--;
  for (let k = 0; k < d; k++) if (lengths[k] !== 1) return false;
  return true;
}

function linearOffset(shape: readonly number[], offsets: readonly number[]): number {
  const strides = stridesOf(shape);
  return offsets.reduce((acc, o, d) => acc + o * strides[d]!, 0);
}

export class RedisStorageReader extends StorageReader {
  private readonly keySpace: KeySpace;
  private readonly redisInput: RedisInput | undefined;
  private readonly maxInFlight: number;
  private readonly verify: boolean;
  private readonly maxMetadataBytes: number;
  private client: RedisClient | undefined;
  private ownsClient = false;
  private checkpointName: string | undefined;
  private checkpointUrl: string | undefined;
  private metadata: Metadata | undefined;
  private storage: RedisStorageData | undefined;
  private readonly bulkTransport: boolean;
  private readonly slots: Slots;
  private readonly pool: BufferPool;
  private bulk: BulkSocket | undefined;

  constructor(options: RedisStorageReaderOptions = {}) {
    super();
    this.keySpace = new KeySpace(options.prefix ?? DEFAULT_PREFIX);
    this.redisInput = options.redis;
    this.maxInFlight = Math.max(1, Math.floor(options.maxInFlight ?? 4));
    this.verify = options.verifyChecksums ?? true;
    this.maxMetadataBytes = options.maxMetadataBytes ?? 512 * 1024 * 1024;
    this.bulkTransport = options.bulkTransport ?? true;
    this.slots = new Slots(this.maxInFlight);
    this.pool = new BufferPool(this.maxInFlight);
    if (options.checkpointId !== undefined) this.reset(options.checkpointId);
  }

  static override validateCheckpointId(checkpointId: string): boolean {
    return isRedisCheckpointId(checkpointId);
  }

  reset(checkpointId?: string): void {
    if (checkpointId !== undefined) {
      const parsed = parseCheckpointId(checkpointId);
      this.checkpointName = parsed.name;
      this.checkpointUrl = parsed.url;
    }
    this.metadata = undefined;
    this.storage = undefined;
  }

  async readMetadata(): Promise<Metadata> {
    const store = this.store();
    const size = await this.dataClient().strlen(store.keys.meta);
    if (size > this.maxMetadataBytes) throw new DcpValueError(`Metadata of "${store.id}" is ${size} bytes, over the ${this.maxMetadataBytes}-byte limit`, 'METADATA_INVALID');
    const { state, metadataJson } = await store.stateAndMetadata();
    if (!state) throw new CheckpointNotFoundError(store.id);
    if (state.status !== 'committed' || metadataJson === null) throw new CheckpointNotCommittedError(store.id, state.deleting ? 'deleting' : state.status);
    const metadata = metadataFromJSON(metadataJson.toString('utf8'));
    parseStorageData(metadata.storageData);
    return metadata;
  }

  setUpStorageReader(metadata: Metadata): void {
    this.metadata = metadata;
    this.storage = parseStorageData(metadata.storageData);
  }

  prepareLocalPlan(plan: LoadPlan): LoadPlan {
    return plan;
  }

  prepareGlobalPlan(plans: LoadPlan[]): LoadPlan[] {
    return plans;
  }

  async readData(plan: LoadPlan, planner: LoadPlanner): Promise<void> {
    if (!this.metadata || !this.storage) throw new DcpValueError('readData before setUpStorageReader');
    this.bulk = this.bulkTransport ? await BulkSocket.forClient(this.dataClient()).catch(() => undefined) : undefined;
    try {
      // Items are started in waves; `slots` bounds the parts actually in flight.
      await boundedEach(plan.items, this.maxInFlight * 2, (item) => this.readItem(item, planner));
    } finally {
      this.bulk?.close();
      this.bulk = undefined;
    }
  }

  override async close(): Promise<void> {
    if (this.client && this.ownsClient) await closeClient(this.client);
    this.client = undefined;
  }

  private location(item: ReadItem): ItemLocation {
    const loc = this.storage!.items[metadataIndexKey(item.storageIndex)];
    if (!loc) throw new MissingDataError(item.storageIndex.fqn, '(none)', 'the checkpoint records no location for this item');
    return loc;
  }

  private spans(loc: ItemLocation, start: number, end: number): PartSpan[] {
    const out: PartSpan[] = [];
    let pos = 0;
    for (const part of loc.p) {
      const next = pos + part[3];
      if (next > start && pos < end) out.push({ part, start: pos, end: next });
      pos = next;
    }
    return out;
  }

  /**
   * Fetches one part (GETRANGE: whole segments and packed items alike), verifies it and
   * hands it to `use`, which must copy what it needs before returning: the buffer is a
   * reused receive buffer. At most `maxInFlight` parts are in flight or in use per rank.
   */
  private withPart(fqn: string, part: Part, use: (bytes: Buffer) => void): Promise<void> {
    return this.slots.run(async () => {
      const [rank, seq, offset, length, crc] = part;
      const key = this.store().keys.dataKey(this.storage!.saveId, rank, seq);
      const bulk = this.bulk;
      let buf: Buffer;
      let pooled: Buffer | undefined;
      if (bulk) {
        pooled = this.pool.take(length);
        const got = await bulk.getRangeInto(key, offset, offset + length - 1, pooled).catch((err: unknown) => {
          this.pool.give(pooled!);
          throw err;
        });
        buf = pooled.subarray(0, got);
      } else {
        buf = await this.dataClient().getrangeBuffer(key, offset, offset + length - 1);
      }
      try {
        if (buf.byteLength !== length) {
          throw new MissingDataError(fqn, key, buf.byteLength === 0 ? 'key is missing' : `expected ${length} bytes at offset ${offset}, got ${buf.byteLength}`);
        }
        if (this.verify) {
          const actual = crc32c(buf) >>> 0;
          if (actual !== crc) throw new ChecksumMismatchError(fqn, key, `CRC32C ${actual} != stored ${crc}`);
        }
        use(buf);
      } finally {
        if (pooled) this.pool.give(pooled);
      }
    });
  }

  private async readItem(item: ReadItem, planner: LoadPlanner): Promise<void> {
    const fqn = item.storageIndex.fqn;
    const loc = this.location(item);
    if (item.type === LoadItemType.BYTE_IO) {
      const value = Buffer.allocUnsafe(loc.n);
      let at = 0;
      const starts = loc.p.map((p) => ((at += p[3]), at - p[3]));
      await Promise.all(loc.p.map((p, i) => this.withPart(fqn, p, (buf) => value.set(buf, starts[i]!))));
      planner.loadBytes(item, value);
      return;
    }
    const { chunk, tensor } = lookupChunk(this.metadata!, item.storageIndex);
    const elem = elementSize(tensor.properties.dtype);
    const expected = chunk.sizes.reduce((a, b) => a * b, 1) * elem;
    if (loc.n !== expected) throw new MissingDataError(fqn, '(metadata)', `chunk holds ${loc.n} bytes, its shape needs ${expected}`);
    const region = planner.resolveTensor(item);
    const range = storageByteRange(chunk.sizes, item.storageOffsets, item.lengths, elem);
    if (range.end > range.start) {
      const spans = this.spans(loc, range.start, range.end);
      if (spans.length === 1) {
        await this.withPart(fqn, spans[0]!.part, (buf) => copyBoxInto(region, buf, chunk.sizes, item.storageOffsets, spans[0]!.start));
      } else if (isContiguous(chunk.sizes, item.lengths) && isContiguous(region.tensor.shape, item.lengths)) {
        // Contiguous on both sides: each part lands directly in the tensor, no staging buffer.
        const dest = region.tensor.bytes;
        const destStart = linearOffset(region.tensor.shape, region.offsets) * elem;
        await Promise.all(
          spans.map((span) =>
            this.withPart(fqn, span.part, (buf) => {
              const from = Math.max(span.start, range.start);
              const to = Math.min(span.end, range.end);
              dest.set(buf.subarray(from - span.start, to - span.start), destStart + (from - range.start));
            }),
          ),
        );
      } else {
        const staging = Buffer.allocUnsafe(range.end - range.start);
        await Promise.all(
          spans.map((span) =>
            this.withPart(fqn, span.part, (buf) => {
              const from = Math.max(span.start, range.start);
              const to = Math.min(span.end, range.end);
              staging.set(buf.subarray(from - span.start, to - span.start), from - range.start);
            }),
          ),
        );
        copyBoxInto(region, staging, chunk.sizes, item.storageOffsets, range.start);
      }
    }
    planner.commitTensor(item, region);
  }

  private dataClient(): RedisClient {
    if (!this.client) {
      const input = this.redisInput ?? this.checkpointUrl;
      if (input === undefined) throw new DcpValueError('RedisStorageReader needs `redis` (a client or URL) or a redis:// checkpoint id');
      const { client, owned } = connect(input);
      this.client = client;
      this.ownsClient = owned;
    }
    return this.client;
  }

  private store(): CheckpointStore {
    if (this.checkpointName === undefined) throw new DcpValueError('No checkpoint id: pass checkpointId to load() or to the reader');
    return new CheckpointStore(this.dataClient(), this.keySpace, this.checkpointName);
  }
}
