/**
 * Where each item's bytes live: the storage data of a Redis checkpoint.
 *
 * An item is stored as one or more parts; a part is a byte range of a data segment
 * (a Redis string). Each rank writes its items back to back as one stream cut into
 * segments of exactly `segmentBytes` (the last one shorter), so an item may span
 * segments and a segment may hold many items. Every part carries a 32-bit
 * checksum of its bytes (the low 32 bits of their XXH64 in format redis-dcp/4, the
 * default; their CRC32C in redis-dcp/1), so a reader verifies exactly what it fetched,
 * even when it fetches only some parts of an item (partial loads).
 *
 * Incremental saves (format redis-dcp/2) store each item as content-addressed pieces
 * instead (pieces.ts); a location then lists piece ids. `storedParts` gives the reader
 * and the verifier one view of both. See docs/format.md, "Incremental saves".
 */
import { DcpError } from '../core/errors.js';
import type { CheckpointKeys } from './keys.js';
import { PIECE_ID, pieceLength } from './pieces.js';

/** Segments whose parts carry their CRC32C (written before session 7, or with `checksum: 'crc32c'`). */
export const STORAGE_FORMAT = 'redis-dcp/1';
/**
 * Format 1 with each part's checksum the low 32 bits of its XXH64 (seed 0) instead of its
 * CRC32C: 2.5-3x cheaper to compute on save and on load (docs/format.md, "Data segments").
 */
export const XXH64_STORAGE_FORMAT = 'redis-dcp/4';
/** How a segment part's checksum is computed. */
export type PartChecksum = 'crc32c' | 'xxh64';
/** Storage data of an incremental save: items are lists of piece ids. */
export const INCREMENTAL_STORAGE_FORMAT = 'redis-dcp/2';
/** The same on Redis Cluster: pieces are stored hash-tagged by piece tag (`P:blob:{tt}:<id>`). */
export const TAGGED_INCREMENTAL_STORAGE_FORMAT = 'redis-dcp/3';

/** [rank, seq, offset, length, checksum]: bytes offset..offset+length of segment (rank, seq), their 32-bit checksum (PartChecksum by format). */
export type Part = readonly [rank: number, seq: number, offset: number, length: number, crc: number];

/** Where an item lives: its total bytes `n` and its parts `p`, in order. */
interface Location<P> {
  readonly n: number;
  readonly p: readonly P[];
}

/** `metadata.storageData` of one format: the save and, per metadataIndexKey(index), the item's location. */
interface StorageDataOf<F extends string, P> {
  readonly format: F;
  readonly saveId: string;
  readonly items: Record<string, Location<P>>;
}

/** An item of a segment save: parts of segments. */
export type ItemLocation = Location<Part>;
/** `metadata.storageData` of a Redis checkpoint. */
export type RedisStorageData = StorageDataOf<typeof STORAGE_FORMAT | typeof XXH64_STORAGE_FORMAT, Part>;

/** An item of an incremental save: its pieces, in order (`<blake3-128 hex>-<length>`). */
export type PieceLocation = Location<string>;
/** `metadata.storageData` of an incremental checkpoint (standalone or Cluster key layout). */
export type IncrementalStorageData = StorageDataOf<typeof INCREMENTAL_STORAGE_FORMAT | typeof TAGGED_INCREMENTAL_STORAGE_FORMAT, string>;

/** Storage data of either format. */
export type StorageData = RedisStorageData | IncrementalStorageData;

/** A stored byte range of an item, whatever the format: checked by its 32-bit checksum or (pieces) its hash. */
export interface StoredPart {
  readonly key: string;
  readonly offset: number;
  readonly length: number;
  /** The part's stored checksum, computed as `checksum` says (absent: CRC32C). */
  readonly crc?: number;
  readonly checksum?: PartChecksum;
  /** The piece id, when the part is a whole content-addressed piece. */
  readonly piece?: string;
}

/** The parts of one item location, in order, as keys and ranges. */
export function storedParts(storage: StorageData, keys: CheckpointKeys, loc: ItemLocation | PieceLocation): StoredPart[] {
  if (storage.format === INCREMENTAL_STORAGE_FORMAT || storage.format === TAGGED_INCREMENTAL_STORAGE_FORMAT) {
    const key = storage.format === INCREMENTAL_STORAGE_FORMAT ? (id: string) => keys.piece(id) : (id: string) => keys.taggedPiece(id);
    return (loc as PieceLocation).p.map((id) => ({ key: key(id), offset: 0, length: pieceLength(id), piece: id }));
  }
  const checksum: PartChecksum = storage.format === XXH64_STORAGE_FORMAT ? 'xxh64' : 'crc32c';
  return (loc as ItemLocation).p.map(([rank, seq, offset, length, crc]) => ({ key: keys.dataKey(storage.saveId, rank, seq), offset, length, crc, checksum }));
}

const SAVE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_SEGMENT = 512 * 1024 * 1024;

function invalid(detail: string): DcpError {
  return new DcpError('METADATA_INVALID', `Invalid storage data: ${detail}`);
}

function isUint(v: unknown, max = Number.MAX_SAFE_INTEGER): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= max;
}

/** Checks storage data read back from Redis (it may have been tampered with). */
export function parseStorageData(value: unknown, worldLimit = 1 << 20): StorageData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('not an object');
  const sd = value as Record<string, unknown>;
  if (sd.format === INCREMENTAL_STORAGE_FORMAT || sd.format === TAGGED_INCREMENTAL_STORAGE_FORMAT) return parseIncremental(sd);
  if (sd.format !== STORAGE_FORMAT && sd.format !== XXH64_STORAGE_FORMAT) throw invalid(`unknown format ${JSON.stringify(sd.format)}`);
  if (typeof sd.saveId !== 'string' || !SAVE_ID.test(sd.saveId)) throw invalid('bad saveId');
  if (typeof sd.items !== 'object' || sd.items === null || Array.isArray(sd.items)) throw invalid('items is not an object');
  for (const [key, loc] of Object.entries(sd.items as Record<string, unknown>)) {
    if (typeof loc !== 'object' || loc === null) throw invalid(`item ${key} has no location`);
    const { n, p } = loc as { n?: unknown; p?: unknown };
    if (!isUint(n) || !Array.isArray(p)) throw invalid(`item ${key} has a malformed location`);
    let sum = 0;
    for (const part of p) {
      if (!Array.isArray(part) || part.length !== 5) throw invalid(`item ${key} has a malformed part`);
      const [rank, seq, offset, length, crc] = part as unknown[];
      if (!isUint(rank, worldLimit) || !isUint(seq) || !isUint(offset, MAX_SEGMENT) || !isUint(length, MAX_SEGMENT) || !isUint(crc, 0xffffffff)) {
        throw invalid(`item ${key} has a part with bad numbers`);
      }
      sum += length;
    }
    if (sum !== n) throw invalid(`item ${key}: parts hold ${sum} bytes, item has ${n}`);
  }
  return sd as unknown as RedisStorageData;
}

function parseIncremental(sd: Record<string, unknown>): IncrementalStorageData {
  if (typeof sd.saveId !== 'string' || !SAVE_ID.test(sd.saveId)) throw invalid('bad saveId');
  if (typeof sd.items !== 'object' || sd.items === null || Array.isArray(sd.items)) throw invalid('items is not an object');
  for (const [key, loc] of Object.entries(sd.items as Record<string, unknown>)) {
    if (typeof loc !== 'object' || loc === null) throw invalid(`item ${key} has no location`);
    const { n, p } = loc as { n?: unknown; p?: unknown };
    if (!isUint(n) || !Array.isArray(p)) throw invalid(`item ${key} has a malformed location`);
    let sum = 0;
    for (const id of p) {
      if (typeof id !== 'string' || !PIECE_ID.test(id) || pieceLength(id) > MAX_SEGMENT) throw invalid(`item ${key} has a malformed piece id`);
      sum += pieceLength(id);
    }
    if (sum !== n) throw invalid(`item ${key}: pieces hold ${sum} bytes, item has ${n}`);
  }
  return sd as unknown as IncrementalStorageData;
}
