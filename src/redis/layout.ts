/**
 * Where each item's bytes live: the storage data of a Redis checkpoint.
 *
 * An item is stored as one or more parts; a part is a byte range of a data segment
 * (a Redis string). Each rank writes its items back to back as one stream cut into
 * segments of exactly `segmentBytes` (the last one shorter), so an item may span
 * segments and a segment may hold many items. Every part carries the
 * CRC32C of its bytes, so a reader verifies exactly what it fetched, even when it
 * fetches only some parts of an item (partial loads).
 */
import { DcpError } from '../core/errors.js';

export const STORAGE_FORMAT = 'redis-dcp/1';

/** [rank, seq, offset, length, crc32c]: bytes offset..offset+length of segment (rank, seq). */
export type Part = readonly [rank: number, seq: number, offset: number, length: number, crc: number];

export interface ItemLocation {
  /** Total bytes of the item. */
  readonly n: number;
  readonly p: readonly Part[];
}

/** `metadata.storageData` of a Redis checkpoint. */
export interface RedisStorageData {
  readonly format: typeof STORAGE_FORMAT;
  readonly saveId: string;
  /** metadataIndexKey(index) → location. */
  readonly items: Record<string, ItemLocation>;
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
export function parseStorageData(value: unknown, worldLimit = 1 << 20): RedisStorageData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('not an object');
  const sd = value as Record<string, unknown>;
  if (sd.format !== STORAGE_FORMAT) throw invalid(`unknown format ${JSON.stringify(sd.format)}`);
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
