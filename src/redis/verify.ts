/**
 * The one verifier of stored data: a part's length and CRC32C (what the reader checks on
 * every fetch) and a whole checkpoint's segments (what CheckpointCatalog.validate reports).
 * See docs/format.md, "Metadata" (the part records) and "Data segments".
 */
import { crc32c } from '@node-rs/crc32';
import type { DcpError } from '../core/errors.js';
import { metadataIndexKey, metadataIndexKeyFqn, type Metadata } from '../core/metadata.js';
import { elementSize } from '../core/tensor.js';
import { boundedEach } from './bounded.js';
import type { RedisClient } from './connection.js';
import { ChecksumMismatchError, MissingDataError } from './errors.js';
import type { CheckpointKeys } from './keys.js';
import { storedParts, type StorageData, type StoredPart } from './layout.js';
import { pieceProblem } from './pieces.js';

export type DataProblemKind = 'missing_key' | 'wrong_length' | 'checksum_mismatch';

export interface DataProblem {
  readonly kind: DataProblemKind;
  readonly message: string;
}

export function crcOf(bytes: Uint8Array): number {
  return crc32c(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) >>> 0;
}

/**
 * The CRC32C of each part of one fetch, computed as the fetch's bytes arrive (fed in
 * order), so a part is verified while the rest of the reply is still on the wire and
 * while its bytes are still in the CPU cache (docs/performance.md, "Session 4").
 * Parts of content-addressed pieces (BLAKE3) are left to partProblem.
 */
export class StreamedCrcs {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly crcs: number[] = [];
  private readonly index = new Map<string, number>();
  /** Bytes fed so far, and the first part not yet complete. */
  private pos = 0;
  private next = 0;

  /** `parts` of one key fetched from `fetchStart` on. */
  constructor(parts: readonly StoredPart[], fetchStart: number) {
    const sorted = parts.filter((p) => p.piece === undefined).sort((a, b) => a.offset - b.offset);
    for (const { offset, length } of sorted) {
      const key = `${offset}:${length}`;
      if (this.index.has(key)) continue;
      this.index.set(key, this.starts.length);
      this.starts.push(offset - fetchStart);
      this.ends.push(offset - fetchStart + length);
      this.crcs.push(0);
    }
  }

  /** The next bytes of the fetch (called by the bulk connection as they land). */
  readonly feed = (bytes: Uint8Array): void => {
    const from = this.pos;
    const to = from + bytes.byteLength;
    this.pos = to;
    for (let i = this.next; i < this.starts.length; i++) {
      const start = this.starts[i]!;
      const end = this.ends[i]!;
      if (start >= to) break;
      if (end > from) {
        const a = Math.max(start, from) - from;
        this.crcs[i] = crc32c(bytes.subarray(a, Math.min(end, to) - from), this.crcs[i]!);
      }
      if (end <= to && i === this.next) this.next++;
    }
  };

  /** The CRC32C of `part`'s bytes as fed (complete only when the fetch reached the part's end). */
  crcOf(part: StoredPart): number | undefined {
    const i = this.index.get(`${part.offset}:${part.length}`);
    return i === undefined ? undefined : this.crcs[i]! >>> 0;
  }
}

/**
 * What is wrong with `part`, read from a fetch of `fetched` bytes that started at
 * `fetchStart` of its key: the fetch must reach the part's end, and (unless `bytes`
 * is undefined) the part's bytes must have its CRC32C, or a piece its BLAKE3 hash.
 * With `streamed`, the CRC32C computed while the bytes arrived is used.
 */
export function partProblem(part: StoredPart, fetchStart: number, fetched: number, bytes: Uint8Array | undefined, streamed?: StreamedCrcs): DataProblem | undefined {
  const { offset, length, crc } = part;
  if (offset - fetchStart + length > fetched) {
    if (fetched === 0) return { kind: 'missing_key', message: 'data key is missing' };
    return { kind: 'wrong_length', message: `expected ${length} bytes at offset ${offset}, the value ends at ${fetchStart + fetched}` };
  }
  if (bytes === undefined) return undefined;
  if (part.piece !== undefined) {
    const message = pieceProblem(part.piece, bytes);
    return message === undefined ? undefined : { kind: 'checksum_mismatch', message };
  }
  const actual = streamed?.crcOf(part) ?? crcOf(bytes);
  return actual === crc ? undefined : { kind: 'checksum_mismatch', message: `CRC32C of bytes ${offset}..${offset + length} is ${actual}, stored ${crc}` };
}

/** The typed error a load fails with for `problem` (DATA_MISSING or CHECKSUM_MISMATCH). */
export function dataError(problem: DataProblem, fqn: string, key: string): DcpError {
  return problem.kind === 'checksum_mismatch' ? new ChecksumMismatchError(fqn, key, problem.message) : new MissingDataError(fqn, key, problem.message);
}

/** A problem of one item of a checkpoint (and the data key, when it is about one). */
export interface ItemProblem {
  readonly kind: DataProblemKind | 'metadata_invalid';
  readonly fqn: string;
  readonly key?: string;
  readonly message: string;
}

export interface VerifyOptions {
  /** Recompute every checksum (reads every byte). */
  readonly deep?: boolean;
  readonly onProgress?: (done: number, total: number) => void;
}

interface SegmentUse {
  size: number;
  readonly fqns: Set<string>;
  readonly parts: Array<{ fqn: string; part: StoredPart }>;
}

/** Item sizes against their chunks' shapes (no Redis access). */
function locationProblems(metadata: Metadata, storage: StorageData): ItemProblem[] {
  const problems: ItemProblem[] = [];
  const located = new Set(Object.keys(storage.items).map(metadataIndexKeyFqn));
  for (const [fqn, md] of Object.entries(metadata.stateDictMetadata)) {
    if (!located.has(fqn)) problems.push({ kind: 'metadata_invalid', fqn, message: 'no stored location for this item' });
    if (md.type !== 'tensor') continue;
    const elem = elementSize(md.properties.dtype);
    for (const chunk of md.chunks) {
      const loc = storage.items[metadataIndexKey({ fqn, offset: chunk.offsets })];
      const need = chunk.sizes.reduce((a, b) => a * b, 1) * elem;
      if (loc && loc.n !== need) problems.push({ kind: 'wrong_length', fqn, message: `chunk at [${chunk.offsets.join(', ')}] is recorded as ${loc.n} bytes, its shape needs ${need}` });
    }
  }
  return problems;
}

/**
 * Every problem of a committed checkpoint's data: each item has a location of the size its
 * shape needs, each segment exists with exactly the bytes its parts account for, and (deep)
 * each part has its CRC32C.
 */
export async function verifyCheckpointData(
  client: RedisClient,
  keys: CheckpointKeys,
  metadata: Metadata,
  storage: StorageData,
  options: VerifyOptions = {},
): Promise<ItemProblem[]> {
  const problems = locationProblems(metadata, storage);
  const segments = new Map<string, SegmentUse>();
  for (const [itemKey, loc] of Object.entries(storage.items)) {
    const fqn = metadataIndexKeyFqn(itemKey);
    for (const part of storedParts(storage, keys, loc)) {
      const key = part.key;
      const seg = segments.get(key) ?? { size: 0, fqns: new Set<string>(), parts: [] };
      seg.size = Math.max(seg.size, part.offset + part.length);
      seg.fqns.add(fqn);
      seg.parts.push({ fqn, part });
      segments.set(key, seg);
    }
  }
  const total = segments.size;
  let done = 0;
  await boundedEach([...segments.entries()], options.deep ? 4 : 16, async ([key, seg]) => {
    const length = await client.strlen(key);
    const fqns = [...seg.fqns];
    if (length !== seg.size) {
      const problem: DataProblem = length === 0 ? { kind: 'missing_key', message: 'data key is missing' } : { kind: 'wrong_length', message: `data key has ${length} bytes, expected ${seg.size}` };
      for (const fqn of fqns) problems.push({ ...problem, fqn, key });
    } else if (options.deep) {
      const buf = (await client.getBuffer(key)) ?? Buffer.alloc(0);
      for (const { fqn, part } of seg.parts) {
        const problem = partProblem(part, 0, buf.byteLength, buf.subarray(part.offset, part.offset + part.length));
        if (problem) problems.push({ ...problem, fqn, key });
      }
    }
    options.onProgress?.(++done, total);
  });
  return problems;
}
