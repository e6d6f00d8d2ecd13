/**
 * Incremental saves: content-addressed pieces and their reference bookkeeping (claim before
 * use, release of dropped saves, sweep of strays). See docs/format.md, "Incremental saves".
 */
import { blake3 } from '@napi-rs/blake-hash';
import { Cluster } from 'ioredis';
import { DcpError } from '../core/errors.js';
import type { RedisClient } from './connection.js';
import type { CheckpointKeys, KeySpace } from './keys.js';
import { runScript } from './scripts.js';
import { segmentSizes } from './segment-layout.js';
import { claimTaggedPieces, heldBy, members, releaseTaggedPieces, storedTaggedBytes, sweepTaggedPieces } from './tagged-pieces.js';

/** The content hash of a piece: BLAKE3, first 128 bits, as 32 hex digits. */
export const PIECE_HASH = 'blake3-128';

/** A piece id: `<32 hex digits of BLAKE3>-<length in bytes>`. */
export const PIECE_ID = /^[0-9a-f]{32}-(0|[1-9][0-9]{0,9})$/;

/** Pieces per claim/release script call: bounded script run time and argument size. */
const BATCH = 1000;
/** Pieces per release script: a piece no save holds is unlinked there, freed in Redis' main thread (see unlink.ts); 16 of 1 MiB stall Redis ~1–2 ms. */
const RELEASE_BATCH = 16;

export function pieceHash(bytes: Uint8Array): string {
  // A Buffer view of the same memory (no copy): the binding's types take Buffer.
  return blake3(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString('hex', 0, 16);
}

export function pieceId(bytes: Uint8Array): string {
  return `${pieceHash(bytes)}-${bytes.byteLength}`;
}

export function pieceLength(id: string): number {
  return Number(id.slice(id.lastIndexOf('-') + 1));
}

/** What is wrong with `bytes` read as piece `id` (wrong length or hash), or undefined. */
export function pieceProblem(id: string, bytes: Uint8Array): string | undefined {
  const length = pieceLength(id);
  if (bytes.byteLength !== length) return `piece ${id} holds ${bytes.byteLength} bytes, expected ${length}`;
  const actual = pieceHash(bytes);
  return actual === id.slice(0, 32) ? undefined : `BLAKE3 of piece ${id} is ${actual}…`;
}

/**
 * An item's bytes cut into pieces aligned to the item's own start: full pieces of
 * `pieceBytes`, then the tail as 2^k − 64-byte pieces (allocator size classes), as for segments.
 * A change inside the item rewrites only the pieces it touches.
 */
export function cutItem(bytes: Uint8Array, pieceBytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const size of segmentSizes(bytes.byteLength, pieceBytes)) {
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

function expect(reply: string[], what: string): void {
  if (reply[0] === 'OK') return;
  const code = reply[0] === 'NOT_PENDING' ? 'FENCED' : 'REDIS_ERROR';
  throw new DcpError(code, `${what} refused: ${reply.join(' ').slice(0, 200)}`);
}

/** The keys every piece script takes first. */
function head(keySpace: KeySpace, keys: CheckpointKeys, saveId: string): string[] {
  return [keys.state, keys.pieceIndex(saveId), keySpace.pieceCounts(), keySpace.pieceBytes()];
}

/** What a claim says of a piece: stored; missing and this claim counted it first (write it, count its bytes); missing, counted before (write it too). */
export type ClaimStatus = 'stored' | 'first' | 'again';
const STATUS: Record<string, ClaimStatus> = { '1': 'stored', '0': 'first', '2': 'again' };

/**
 * Claims pieces for the pending save `saveId` (recorded in its piece index and counted) and
 * returns, for each, whether it is stored and, if not, whether this claim counted it first
 * (exactly one claimer of a new piece does, so storedBytes counts it once). Refused (FENCED)
 * unless the save is pending. On a Cluster: per piece tag (tagged-pieces.ts).
 */
export async function claimPieces(client: RedisClient, keySpace: KeySpace, keys: CheckpointKeys, saveId: string, ids: readonly string[]): Promise<ClaimStatus[]> {
  if (client instanceof Cluster) return (await claimTaggedPieces(client, keySpace, keys, saveId, ids)).map((s) => STATUS[s] ?? 'again');
  const exists: ClaimStatus[] = [];
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const reply = await runScript(client, 'claim-pieces', [...head(keySpace, keys, saveId), ...batch.map((id) => keySpace.piece(id))], [saveId, ...batch]);
    expect(reply, `claiming the pieces of save ${saveId}`);
    for (let j = 1; j < reply.length; j++) exists.push(STATUS[reply[j]!] ?? 'again');
  }
  return exists;
}

/**
 * Releases every piece of a dropped save (neither pending nor committed): pieces no other
 * save holds are unlinked. Returns how many went, or undefined when the save is still
 * pending or committed (then nothing is released).
 */
export async function releasePieces(client: RedisClient, keySpace: KeySpace, keys: CheckpointKeys, saveId: string): Promise<number | undefined> {
  if (client instanceof Cluster) return releaseTaggedPieces(client, keySpace, keys, saveId);
  const ids = await members(client, keys.pieceIndex(saveId));
  let unlinked = 0;
  for (let i = 0; i < ids.length; i += RELEASE_BATCH) {
    const batch = ids.slice(i, i + RELEASE_BATCH);
    const reply = await runScript(client, 'release-pieces', [...head(keySpace, keys, saveId), ...batch.map((id) => keySpace.piece(id))], [saveId, ...batch]);
    if (reply[0] === 'COMMITTED' || reply[0] === 'PENDING') return undefined;
    expect(reply, `releasing the pieces of save ${saveId}`);
    unlinked += Number(reply[1]);
  }
  return unlinked;
}

/**
 * Unlinks stored pieces that no save counts (a rank's SET that arrived after its save was
 * released). Safe while saves run: the count is checked in the unlinking script. On a
 * Cluster it first releases the holds of dead saves, per tag (tagged-pieces.ts).
 */
export async function sweepPieces(client: RedisClient, keySpace: KeySpace): Promise<number> {
  if (client instanceof Cluster) return sweepTaggedPieces(client, keySpace);
  const prefix = keySpace.piece('');
  let unlinked = 0;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    const ids = keys.map((k) => k.slice(prefix.length)).filter((id) => PIECE_ID.test(id));
    if (ids.length === 0) continue;
    const reply = await runScript(client, 'sweep-pieces', [keySpace.pieceCounts(), ...ids.map((id) => keySpace.piece(id))], ids);
    unlinked += Number(reply[1] ?? 0);
  } while (cursor !== '0');
  return unlinked;
}

/** Bytes of all pieces counted by some save (each piece once). */
export async function storedPieceBytes(client: RedisClient, keySpace: KeySpace): Promise<number> {
  if (client instanceof Cluster) return storedTaggedBytes(client, keySpace);
  return Number((await client.get(keySpace.pieceBytes())) ?? 0);
}

/**
 * For each piece id, the committed checkpoints of the prefix whose committed save references
 * it (deep validation names them all when a shared piece is damaged). Reads the catalog.
 */
export async function checkpointsReferencing(client: RedisClient, keySpace: KeySpace, pieceIds: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(pieceIds.map((id) => [id, []]));
  if (pieceIds.length === 0) return out;
  for (const id of await client.zrange(keySpace.catalog(), '0', '-1')) {
    let keys: CheckpointKeys;
    try {
      keys = keySpace.checkpoint(id);
    } catch {
      continue; // not a valid id: not ours
    }
    const [saveId, deleting] = await client.hmget(keys.state, 'committedSaveId', 'deleting');
    if (!saveId || deleting === '1') continue;
    const held = client instanceof Cluster ? await heldBy(client, keySpace, id, saveId, pieceIds) : ((await client.smismember(keys.pieceIndex(saveId), ...pieceIds)) as number[]).map((h) => h === 1);
    held.forEach((h, i) => {
      if (h) out.get(pieceIds[i]!)!.push(id);
    });
  }
  for (const ids of out.values()) ids.sort();
  return out;
}
