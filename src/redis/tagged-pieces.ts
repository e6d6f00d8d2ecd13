/**
 * Reference bookkeeping of incremental saves on Redis Cluster (storage format redis-dcp/3):
 * pieces, counts and piece indexes per piece tag (`{tt}`, the first two hex digits of the
 * hash), so every script stays in one slot; the save's state, in its checkpoint's slot, is
 * checked in a separate step. See docs/format.md, "Incremental saves" / "Redis Cluster".
 */
import { Cluster } from 'ioredis';
import { DcpError } from '../core/errors.js';
import { boundedEach } from './bounded.js';
import type { RedisClient } from './connection.js';
import type { CheckpointKeys, KeySpace } from './keys.js';
import { runScript } from './scripts.js';

/** A piece id (as pieces.ts PIECE_ID; not imported: pieces.ts imports this module). */
const PIECE_ID_RULE = /^[0-9a-f]{32}-(0|[1-9][0-9]{0,9})$/;
/** Pieces per claim/release script call. */
const BATCH = 1000;
/** Pieces per release script: a piece no save holds is unlinked there, freed in Redis' main thread (see unlink.ts); 16 of 1 MiB stall Redis ~1–2 ms. */
const RELEASE_BATCH = 16;
/** Tags released or swept side by side. */
const PARALLEL_TAGS = 16;
/** The 256 piece tags: "00" … "ff". */
export const PIECE_TAGS: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Members of a set, read with SSCAN (a set of a million pieces does not block Redis). */
export async function members(client: RedisClient, key: string): Promise<string[]> {
  const out = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await client.sscan(key, cursor, 'COUNT', 1000);
    cursor = next;
    for (const m of batch) out.add(m);
  } while (cursor !== '0');
  return [...out];
}

/** Indices of `ids` grouped by piece tag. */
function byTag(keySpace: KeySpace, ids: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  ids.forEach((id, i) => {
    const tag = keySpace.pieceTag(id);
    out.set(tag, [...(out.get(tag) ?? []), i]);
  });
  return out;
}

function tagKeys(keySpace: KeySpace, tag: string, hold: string): string[] {
  return [keySpace.tagCounts(tag), keySpace.tagBytes(tag), keySpace.tagHolders(tag), hold];
}

/**
 * Claims pieces for the pending save `saveId`: first (one script in the checkpoint's slot,
 * refused with FENCED unless the save is pending) the tags are recorded in the save's tag
 * set, so its release finds them; then, per tag, claim-tagged-pieces. Returns per piece
 * '1' (stored), '0' (missing, counted first by this claim) or '2' (missing, counted before).
 */
export async function claimTaggedPieces(client: RedisClient, keySpace: KeySpace, keys: CheckpointKeys, saveId: string, ids: readonly string[]): Promise<string[]> {
  const groups = byTag(keySpace, ids);
  const reply = await runScript(client, 'record-keys', [keys.state, keys.pieceTags(saveId)], [saveId, ...groups.keys()]);
  if (reply[0] !== 'OK') throw new DcpError(reply[0] === 'NOT_PENDING' ? 'FENCED' : 'REDIS_ERROR', `claiming the pieces of save ${saveId} refused: ${reply.join(' ').slice(0, 200)}`);
  const out = new Array<string>(ids.length);
  const holder = `${keys.id}/${saveId}`;
  await Promise.all(
    [...groups].map(async ([tag, indices]) => {
      for (let i = 0; i < indices.length; i += BATCH) {
        const batch = indices.slice(i, i + BATCH).map((j) => ids[j]!);
        const hold = keySpace.tagHold(tag, keys.id, saveId);
        const r = await runScript(client, 'claim-tagged-pieces', [...tagKeys(keySpace, tag, hold), ...batch.map((id) => keySpace.taggedPiece(id))], [holder, ...batch]);
        if (r[0] !== 'OK') throw new DcpError('REDIS_ERROR', `claim-tagged-pieces: ${r.join(' ').slice(0, 200)}`);
        batch.forEach((_, k) => (out[indices[i + k]!] = r[k + 1]!));
      }
    }),
  );
  return out;
}

/** Releases everything save `saveId` of checkpoint `id` holds in `tag` (the caller saw the save dead). */
async function releaseHold(client: RedisClient, keySpace: KeySpace, tag: string, id: string, saveId: string): Promise<number> {
  const hold = keySpace.tagHold(tag, id, saveId);
  const ids = await members(client, hold);
  let unlinked = 0;
  // At least one call: an empty index also takes the holder out of the tag's holders.
  for (let i = 0; i === 0 || i < ids.length; i += RELEASE_BATCH) {
    const batch = ids.slice(i, i + RELEASE_BATCH);
    const r = await runScript(client, 'release-tagged-pieces', [...tagKeys(keySpace, tag, hold), ...batch.map((p) => keySpace.taggedPiece(p))], [`${id}/${saveId}`, ...batch]);
    unlinked += Number(r[1] ?? 0);
  }
  return unlinked;
}

/** Whether `saveId` is the pending or committed save of its checkpoint (read in the checkpoint's slot). */
async function isLive(client: RedisClient, keys: CheckpointKeys, saveId: string): Promise<boolean> {
  const [pending, committed] = await client.hmget(keys.state, 'pendingSaveId', 'committedSaveId');
  return pending === saveId || committed === saveId;
}

/**
 * Releases every piece of a dropped save. Step 1 reads the save's state: a save that is
 * neither pending nor committed never becomes either again, so what step 2 (per tag,
 * single-slot scripts) does stays right. Returns how many pieces went, or undefined when
 * the save is still pending or committed (nothing released).
 */
export async function releaseTaggedPieces(client: RedisClient, keySpace: KeySpace, keys: CheckpointKeys, saveId: string): Promise<number | undefined> {
  if (await isLive(client, keys, saveId)) return undefined;
  const tags = await members(client, keys.pieceTags(saveId));
  let unlinked = 0;
  await boundedEach(tags, PARALLEL_TAGS, async (tag) => {
    unlinked += await releaseHold(client, keySpace, tag, keys.id, saveId);
  });
  // A claim of this (dead) save still in flight may add a hold later: gc's sweep releases it.
  await client.del(keys.pieceTags(saveId));
  return unlinked;
}

/**
 * gc on a Cluster: per tag, releases the holds of saves that are neither pending nor
 * committed (a late claim of an aborted save, a release that died), then unlinks stored
 * pieces that no save counts (checked in the unlinking script). Returns pieces unlinked.
 */
export async function sweepTaggedPieces(client: RedisClient, keySpace: KeySpace): Promise<number> {
  let unlinked = 0;
  await boundedEach(PIECE_TAGS, PARALLEL_TAGS, async (tag) => {
    for (const holder of await members(client, keySpace.tagHolders(tag))) {
      const slash = holder.lastIndexOf('/');
      let keys: CheckpointKeys;
      try {
        keys = keySpace.checkpoint(holder.slice(0, slash));
      } catch {
        continue; // not a holder this library wrote
      }
      const saveId = holder.slice(slash + 1);
      if (!(await isLive(client, keys, saveId))) unlinked += await releaseHold(client, keySpace, tag, keys.id, saveId);
    }
  });
  const nodes = client instanceof Cluster ? client.nodes('master') : [client];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', `${keySpace.prefix}:blob:{*}:*`, 'COUNT', 1000);
      cursor = next;
      const ids = found.map((k) => k.slice(k.indexOf('}:') + 2)).filter((id, i) => PIECE_ID_RULE.test(id) && keySpace.taggedPiece(id) === found[i]);
      for (const [tag, indices] of byTag(keySpace, ids)) {
        const batch = indices.map((i) => ids[i]!);
        const r = await runScript(client, 'sweep-pieces', [keySpace.tagCounts(tag), ...batch.map((id) => keySpace.taggedPiece(id))], batch);
        unlinked += Number(r[1] ?? 0);
      }
    } while (cursor !== '0');
  }
  return unlinked;
}

/** Bytes of all counted pieces (each once): the 256 tag counters summed. */
export async function storedTaggedBytes(client: RedisClient, keySpace: KeySpace): Promise<number> {
  const values = await Promise.all(PIECE_TAGS.map((tag) => client.get(keySpace.tagBytes(tag))));
  return values.reduce((sum, v) => sum + Number(v ?? 0), 0);
}

/** Which of `pieceIds` save `saveId` of checkpoint `id` holds. */
export async function heldBy(client: RedisClient, keySpace: KeySpace, id: string, saveId: string, pieceIds: readonly string[]): Promise<boolean[]> {
  const out = new Array<boolean>(pieceIds.length).fill(false);
  for (const [tag, indices] of byTag(keySpace, pieceIds)) {
    const held = (await client.smismember(keySpace.tagHold(tag, id, saveId), ...indices.map((i) => pieceIds[i]!))) as number[];
    held.forEach((h, k) => (out[indices[k]!] = h === 1));
  }
  return out;
}
