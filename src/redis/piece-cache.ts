/**
 * Incremental saves: a piece whose bytes did not change since this process last saved that
 * position reuses its BLAKE3 id, found by XXH64 (~3× faster here) instead of BLAKE3. So an
 * unchanged state dict is saved at XXH64 speed. A false match (a changed piece with the same
 * XXH64, 2^-64 by accident) cannot poison a shared piece: every piece a save writes under an id
 * it did not compute by BLAKE3 (from this cache or from the pre-flight) is checked against it
 * first (pieceProblem). See docs/format.md, "Incremental saves".
 */
import { xxh64 } from '@node-rs/xxhash';
import { pieceId, pieceLength } from './pieces.js';

/** Positions remembered per thread (about 100 bytes each); the map starts over past this. */
const MAX_ENTRIES = 1 << 20;

interface Entry {
  readonly fast: bigint;
  readonly id: string;
}

const entries = new Map<string, Entry>();
/** Pieces hashed for their id (XXH64 and/or BLAKE3) by this thread. */
let hashed = 0;

/**
 * The id of `bytes` saved at `position` (prefix, item, piece ordinal), and whether it came from the cache
 * (unverified). `position` undefined (writer option pieceIdCache: false): BLAKE3 only, the cache untouched.
 */
export function cachedPieceId(position: string | undefined, bytes: Uint8Array): { id: string; cached: boolean } {
  hashed++;
  if (position === undefined) return { id: pieceId(bytes), cached: false };
  const fast = xxh64(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const hit = entries.get(position);
  if (hit && hit.fast === fast && pieceLength(hit.id) === bytes.byteLength) return { id: hit.id, cached: true };
  const id = pieceId(bytes);
  if (entries.size >= MAX_ENTRIES) entries.clear();
  entries.set(position, { fast, id });
  return { id, cached: false };
}

/** Forgets every position (after a false match was caught). */
export function clearPieceIds(): void {
  entries.clear();
}

/** How many pieces this thread has hashed for their id (tests: a save with the memory pre-flight hashes each piece once). */
export function piecesHashed(): number {
  return hashed;
}

/** The cache itself (tests: to simulate a false XXH64 match). */
export function pieceIdEntries(): Map<string, Entry> {
  return entries;
}
