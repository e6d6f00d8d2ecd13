/**
 * One rank's part of an incremental save: its items cut into pieces aligned to each item's
 * start, hashed, claimed for the save (before any is written or used), and only the pieces
 * Redis does not hold yet written. See docs/format.md, "Incremental saves".
 */
import { Cluster } from 'ioredis';
import type { WriteItem } from '../core/planner.js';
import type { WriteResult } from '../core/storage.js';
import { Slots, type Pace } from './bounded.js';
import { awaitReplicas, inClusterOrder, openBulk, type BulkTransport, type ClusterOrder } from './cluster-bulk.js';
import type { RedisClient } from './connection.js';
import type { CheckpointKeys, KeySpace } from './keys.js';
import type { PieceLocation } from './layout.js';
import { claimPieces, cutItem, pieceProblem } from './pieces.js';
import { cachedPieceId, clearPieceIds } from './piece-cache.js';
import type { PlannedPieces } from './planned-pieces.js';
import { DcpError } from '../core/errors.js';
import { metadataIndexKey } from '../core/metadata.js';

export interface PieceWriteContext {
  readonly client: RedisClient;
  readonly keySpace: KeySpace;
  readonly keys: CheckpointKeys;
  readonly saveId: string;
  readonly pieceBytes: number;
  readonly maxInFlight: number;
  /** Each item's identity (metadataIndexKey), naming its pieces' positions in the id cache (piece-cache.ts). */
  readonly positions?: readonly string[];
  /** The bulk connections (standalone Redis, or per master of a Cluster): SETs straight from the tensors' memory. */
  readonly bulk?: BulkTransport | undefined;
  /** Find unchanged pieces by XXH64 through the id cache (writer option pieceIdCache, default true). */
  readonly idCache?: boolean;
  /** Ids the memory pre-flight of this save computed (estimateStored): reused for items whose byte view is the same. */
  readonly planned?: PlannedPieces | undefined;
  /** Per item, ids known without hashing (from `planned`), unverified: checked by BLAKE3 before a piece is written under one. */
  readonly known?: ReadonlyArray<readonly string[] | undefined>;
  /** On a Cluster, the order of each claimed batch's writes (writer option clusterWriteOrder), 'by-node' starting at this rank's master. */
  readonly order: ClusterOrder;
  readonly rank: number;
  /** The writer's maxBytesPerSecond: each new piece's write waits its turn (none: no limit). */
  readonly pace?: Pace;
}

/**
 * RedisStorageWriter.writeData of an incremental save: the write results of `planItems`
 * (whose bytes are `items`); the first item's location also carries the bytes this rank
 * wrote (`w`, summed into storedBytes and removed by the coordinator's finish).
 */
export async function writeIncremental(planItems: readonly WriteItem[], items: readonly Uint8Array[], ctx: PieceWriteContext, bulkConnections: number): Promise<WriteResult[]> {
  const bulk = bulkConnections > 0 ? await openBulk(ctx.client, bulkConnections).catch(() => undefined) : undefined;
  try {
    const positions = planItems.map((item) => metadataIndexKey(item.index));
    const known = ctx.planned ? positions.map((item, i) => ctx.planned!.idsFor(item, items[i]!)) : undefined;
    const { locations, storedBytes } = await writePieces(items, { ...ctx, bulk, positions, known });
    // A Cluster's replicas hold the pieces (bulk connections) and the claims (ioredis' node connections) before the commit.
    if (bulk) await awaitReplicas(ctx.client, bulk);
    await awaitReplicas(ctx.client, undefined);
    return planItems.map((item, i) => ({ index: item.index, sizeInBytes: locations[i]!.n, storageData: i === 0 ? { ...locations[i]!, w: storedBytes } : locations[i] }));
  } finally {
    bulk?.close();
  }
}

export interface PieceWriteResult {
  readonly locations: PieceLocation[];
  /** Bytes of the pieces this rank wrote (those Redis did not hold when they were claimed). */
  readonly storedBytes: number;
  /** How many pieces it wrote. */
  readonly written: number;
}

/** Where a piece sits, for the id cache: prefix, item, piece size, ordinal. */
const position = (keySpace: KeySpace, item: string, pieceBytes: number, k: number) => `${keySpace.prefix}\n${item}\n${pieceBytes}\n${k}`;

/** Pieces hashed and claimed per batch; the batch's claim and writes overlap the hashing of the next. */
const BATCH_PIECES = 64;
const BATCH_BYTES = 64 * 1024 * 1024;
/** Claim scripts in flight at once (the hashing does not wait for their replies). */
const CLAIMS_IN_FLIGHT = 4;
/** Lets I/O callbacks (claim replies, writes) run between two batches of hashing. */
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function writePieces(items: readonly Uint8Array[], ctx: PieceWriteContext): Promise<PieceWriteResult> {
  const keyOf = (id: string) => (ctx.client instanceof Cluster ? ctx.keySpace.taggedPiece(id) : ctx.keySpace.piece(id));
  const locations: PieceLocation[] = [];
  const slots = new Slots(ctx.maxInFlight);
  const writes: Array<Promise<void>> = [];
  const claimed = new Set<string>();
  let failed = false;
  let storedBytes = 0;
  let written = 0;
  let batch: Array<{ id: string; bytes: Uint8Array; cached: boolean }> = [];
  let batchBytes = 0;

  const write = (id: string, bytes: Uint8Array, cached: boolean): Promise<void> =>
    slots.run(async () => {
      if (failed) return;
      // An id not hashed from these bytes here (found by XXH64, or by the pre-flight) is checked by BLAKE3 before bytes are stored under it.
      const problem = cached ? pieceProblem(id, bytes) : undefined;
      if (problem) {
        clearPieceIds();
        throw new DcpError('CHECKSUM_MISMATCH', `a piece does not hash to the id found for it (${problem}): it matched the XXH64 of the bytes saved there before, or it changed after the memory pre-flight hashed it (the state dict must not change while a save runs); save again`);
      }
      await ctx.pace?.admit(bytes.byteLength);
      if (failed) return;
      const key = keyOf(id);
      const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      await (ctx.bulk ? ctx.bulk.set(key, [buffer]) : ctx.client.set(key, buffer));
    });

  const claims = new Slots(CLAIMS_IN_FLIGHT);
  const claiming: Array<Promise<void>> = [];
  const flush = async (): Promise<void> => {
    const fresh = batch.filter((p) => !claimed.has(p.id) && claimed.add(p.id));
    batch = [];
    batchBytes = 0;
    if (fresh.length === 0 || failed) return;
    const claim = claims.run(() => claimAndWrite(fresh));
    claim.catch(() => {
      failed = true;
    });
    claiming.push(claim);
    await yieldToIo();
  };
  // Claimed (counted, recorded in the save's piece index) before being written or relied on.
  const claimAndWrite = async (fresh: typeof batch): Promise<void> => {
    if (failed) return;
    const status = await claimPieces(ctx.client, ctx.keySpace, ctx.keys, ctx.saveId, fresh.map((p) => p.id));
    const toWrite = fresh.map((p, i) => ({ p, status: status[i] })).filter((e) => e.status !== 'stored');
    // 'by-node' on a Cluster: the batch's writes queue master after master (each master takes its pieces in runs).
    inClusterOrder(ctx.client, ctx.order, toWrite, (e) => keyOf(e.p.id), ctx.rank).forEach(({ p, status }) => {
      // Exactly one claimer of a new piece counts it; another one writes it too (same bytes) in case the first never does.
      if (status === 'first') storedBytes += p.bytes.byteLength;
      written++;
      const done = write(p.id, p.bytes, p.cached);
      done.catch(() => {
        failed = true;
      });
      writes.push(done);
    });
  };

  for (const [n, bytes] of items.entries()) {
    const ids: string[] = [];
    const pieces = cutItem(bytes, ctx.pieceBytes);
    const known = ctx.known?.[n]?.length === pieces.length ? ctx.known[n] : undefined;
    for (const [k, piece] of pieces.entries()) {
      // Unverified either way (cached: true) when known: the bytes may have changed since the pre-flight hashed them.
      const { id, cached } = known ? { id: known[k]!, cached: true } : cachedPieceId(ctx.idCache === false ? undefined : position(ctx.keySpace, ctx.positions?.[n] ?? `#${n}`, ctx.pieceBytes, k), piece);
      ids.push(id);
      batch.push({ id, bytes: piece, cached });
      batchBytes += piece.byteLength;
      if (batch.length >= BATCH_PIECES || batchBytes >= BATCH_BYTES) await flush();
    }
    locations.push({ n: bytes.byteLength, p: ids });
  }
  await flush();
  await Promise.all(claiming);
  await Promise.all(writes);
  return { locations, storedBytes, written };
}

/** What one rank of an incremental save will add to Redis, found before the global plan (memory pre-flight). */
export interface StoredEstimate {
  /** Bytes of the distinct pieces Redis does not hold yet. */
  readonly newBytes: number;
  /** How many of them (one key each). */
  readonly newPieces: number;
  /** Distinct pieces the rank references (one piece-index entry each). */
  readonly pieces: number;
}

/**
 * The memory pre-flight of an incremental save on one rank: hashes the rank's pieces and asks
 * Redis which exist (EXISTS only: nothing is claimed or written); unchanged pieces are found by
 * XXH64 through the id cache (piece-cache.ts). Each item's ids go into `planned`, so writeData
 * of the same save hashes again only items whose byte view changed. An estimate: a piece stored
 * or dropped between this probe and the claims changes what the save really adds.
 */
export async function estimateStored(items: readonly Uint8Array[], positions: readonly string[], client: RedisClient, keySpace: KeySpace, pieceBytes: number, idCache = true, planned?: PlannedPieces): Promise<StoredEstimate> {
  const sizes = new Map<string, number>();
  items.forEach((bytes, n) => {
    const ids = cutItem(bytes, pieceBytes).map((piece, k) => {
      const { id } = cachedPieceId(idCache ? position(keySpace, positions[n]!, pieceBytes, k) : undefined, piece);
      sizes.set(id, piece.byteLength);
      return id;
    });
    planned?.add(positions[n]!, bytes, ids);
  });
  const ids = [...sizes.keys()];
  const key = (id: string) => (client instanceof Cluster ? keySpace.taggedPiece(id) : keySpace.piece(id));
  let newBytes = 0;
  let newPieces = 0;
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    const found = client instanceof Cluster ? await Promise.all(batch.map((id) => client.exists(key(id)))) : await existsEach(client, batch.map(key));
    batch.forEach((id, j) => {
      if (found[j]) return;
      newBytes += sizes.get(id)!;
      newPieces++;
    });
  }
  return { newBytes, newPieces, pieces: ids.length };
}

async function existsEach(client: RedisClient, keys: readonly string[]): Promise<number[]> {
  const pipeline = client.pipeline();
  for (const k of keys) pipeline.exists(k);
  return ((await pipeline.exec()) ?? []).map(([err, n]) => {
    if (err) throw err;
    return Number(n);
  });
}
