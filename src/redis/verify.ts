/**
 * The one verifier of stored data: a part's length and checksum (XXH64's low 32 bits, or
 * CRC32C in format redis-dcp/1: what the reader checks on every fetch) and a whole
 * checkpoint's segments (what CheckpointCatalog.validate reports).
 * See docs/format.md, "Metadata" (the part records) and "Data segments".
 */
import { crc32c } from '@node-rs/crc32';
import { xxh64, Xxh64 } from '@node-rs/xxhash';
import type { DcpError } from '../core/errors.js';
import { metadataIndexKey, metadataIndexKeyFqn, type Metadata } from '../core/metadata.js';
import { elementSize } from '../core/tensor.js';
import { boundedEach } from './bounded.js';
import type { RedisClient } from './connection.js';
import { ChecksumMismatchError, MissingDataError } from './errors.js';
import type { CheckpointKeys } from './keys.js';
import { storedParts, type PartChecksum, type StorageData, type StoredPart } from './layout.js';
import { pieceProblem } from './pieces.js';

export type DataProblemKind = 'missing_key' | 'wrong_length' | 'checksum_mismatch';

export interface DataProblem {
  readonly kind: DataProblemKind;
  readonly message: string;
}

export function crcOf(bytes: Uint8Array): number {
  return crc32c(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) >>> 0;
}

const LOW_32 = 0xffffffffn;

/** The low 32 bits of the XXH64 (seed 0) of `bytes`: a part's checksum in format redis-dcp/4. */
export function xxh64Low32(bytes: Uint8Array): number {
  return Number(xxh64(bytes) & LOW_32);
}

/** A part's checksum of `bytes`, computed as `kind` says. */
export function checksumOf(kind: PartChecksum, bytes: Uint8Array): number {
  return kind === 'xxh64' ? xxh64Low32(bytes) : crcOf(bytes);
}

const CHECKSUM_NAMES: Record<PartChecksum, string> = { crc32c: 'CRC32C', xxh64: 'XXH64 (low 32 bits)' };

/**
 * The checksum of each part of one fetch, computed as the fetch's bytes arrive (fed in
 * order), so a part is verified while the rest of the reply is still on the wire and
 * while its bytes are still in the CPU cache (docs/performance.md, "Session 4"). The parts
 * of one fetch share a format, so one kind of checksum (their `checksum`, CRC32C when absent).
 * Parts of content-addressed pieces (BLAKE3) are left to partProblem.
 */
export class StreamedCrcs {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private readonly crcs: number[] = [];
  /** XXH64 parts: a running hash each (digested once, by crcOf). */
  private readonly hashers: Array<Xxh64 | number> = [];
  private readonly index = new Map<string, number>();
  private readonly xxh: boolean;
  /** Bytes fed so far, and the first part not yet complete. */
  private pos = 0;
  private next = 0;

  /** `parts` of one key fetched from `fetchStart` on. */
  constructor(parts: readonly StoredPart[], fetchStart: number) {
    const sorted = parts.filter((p) => p.piece === undefined).sort((a, b) => a.offset - b.offset);
    this.xxh = sorted.length > 0 && sorted[0]!.checksum === 'xxh64';
    for (const { offset, length } of sorted) {
      const key = `${offset}:${length}`;
      if (this.index.has(key)) continue;
      this.index.set(key, this.starts.length);
      this.starts.push(offset - fetchStart);
      this.ends.push(offset - fetchStart + length);
      this.crcs.push(0);
      if (this.xxh) this.hashers.push(new Xxh64());
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
        const run = bytes.subarray(a, Math.min(end, to) - from);
        if (this.xxh) {
          // A part digested early (asked for before its last bytes came) keeps that digest: it fails the check, never throws.
          const h = this.hashers[i]!;
          if (typeof h !== 'number') h.update(run);
        } else this.crcs[i] = crc32c(run, this.crcs[i]!);
      }
      if (end <= to && i === this.next) this.next++;
    }
  };

  /** The checksum of `part`'s bytes as fed (complete only when the fetch reached the part's end). */
  crcOf(part: StoredPart): number | undefined {
    const i = this.index.get(`${part.offset}:${part.length}`);
    if (i === undefined) return undefined;
    if (!this.xxh) return this.crcs[i]! >>> 0;
    const h = this.hashers[i]!;
    if (typeof h === 'number') return h;
    const digest = Number(h.digest() & LOW_32);
    this.hashers[i] = digest;
    return digest;
  }
}

/**
 * What is wrong with `part`, read from a fetch of `fetched` bytes that started at
 * `fetchStart` of its key: the fetch must reach the part's end, and (unless `bytes`
 * is undefined) the part's bytes must have its checksum, or a piece its BLAKE3 hash.
 * With `streamed`, the checksum computed while the bytes arrived is used.
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
  const kind = part.checksum ?? 'crc32c';
  const actual = streamed?.crcOf(part) ?? checksumOf(kind, bytes);
  return actual === crc ? undefined : { kind: 'checksum_mismatch', message: `${CHECKSUM_NAMES[kind]} of bytes ${offset}..${offset + length} is ${actual}, stored ${crc}` };
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
 * each part has its checksum.
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
