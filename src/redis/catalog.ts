/**
 * CheckpointCatalog: what operators (the admin API, the CLI) do with checkpoints:
 * list, inspect, validate, delete, repair. Listing only reads the catalog index (a sorted
 * set by creation time), never KEYS/SCAN over the keyspace. See docs/format.md.
 */
import { DcpValueError } from '../core/errors.js';
import { intOption } from '../core/options.js';
import { tracedDelete, type DeleteEvent } from '../core/tracing.js';
import type { Metadata } from '../core/metadata.js';
import { metadataFromJSON } from '../core/metadata-json.js';
import { assertValidCheckpointName, isValidCheckpointName } from './checkpoint-id.js';
import { CheckpointStore, setMembers, parseState, type CheckpointStateRecord, type CheckpointState } from './checkpoint-store.js';
import { closeClient, connect, type RedisClient, type RedisInput } from './connection.js';
import type { CheckpointDetails, CheckpointPage, CheckpointSummary, ValidationReport } from './catalog-schemas.js';
import { CheckpointNotFoundError, FencedError, translatingRedisErrors } from './errors.js';
import { DEFAULT_PREFIX, KeySpace } from './keys.js';
import { unlinkKeys } from './unlink.js';
import { hgetallMany } from './per-key.js';
import { parseStorageData, type StorageData } from './layout.js';
import { DEFAULT_LOCK_TTL_MS, LockNodes, type HeldLock } from './lock.js';
import { SegmentPool, type SegmentRecycler } from './segment-pool.js';
import { checkpointsReferencing, releasePieces, sweepPieces } from './pieces.js';
import { verifyCheckpointData, type VerifyOptions } from './verify.js';
import { catalogUsage, type UsageOptions } from './usage.js';
import type { GcResult, UsageReport } from './catalog-schemas.js';
import { collectGarbage, type GcOptions } from './gc.js';
import { LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, readCatalogBatch, readCheckpointStates, type CheckpointEntry } from './catalog-states.js';

export type { CheckpointDetails, CheckpointPage, CheckpointSummary, GcResult, ProblemKind, RunUsage, UsageReport, ValidationProblem, ValidationReport } from './catalog-schemas.js';
export type { UsageOptions } from './usage.js';
export type { GcOptions } from './gc.js';
export type { CheckpointEntry } from './catalog-states.js';

export interface ListOptions {
  /** Only ids starting with this. */
  readonly prefix?: string;
  /** Only checkpoints in this state (e.g. "incomplete" to find crashed saves). */
  readonly state?: CheckpointState;
  /** From a previous page's nextCursor. */
  readonly cursor?: string;
  /** Page size, 1-LIST_LIMIT_MAX (default LIST_LIMIT_DEFAULT). */
  readonly limit?: number;
}

export type ValidateOptions = VerifyOptions;

export interface DeleteOptions {
  /** Delete only when the state, read again under the lock, passes this test (else resolves false). */
  readonly onlyIf?: (state: CheckpointStateRecord) => boolean;
  /** Segment recycling for this delete (overrides the catalog's recycleTtlMs; 0 unlinks). */
  readonly recycleTtlMs?: number;
}

export interface CheckpointCatalogOptions {
  readonly redis: RedisInput;
  readonly prefix?: string;
  readonly lockRedis?: readonly RedisInput[];
  readonly lockTtlMs?: number;
  /**
   * Segment recycling (default 0 = off): `delete` moves the checkpoint's data segments into
   * the pool for this long instead of unlinking them, so the next save reuses their memory
   * (see RedisStorageWriterOptions.recycleTtlMs). Their memory is freed when the TTL ends.
   */
  readonly recycleTtlMs?: number;
}

interface Cursor {
  readonly s: number;
  readonly m: string;
}

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

function decodeCursor(text: string): Cursor {
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Cursor;
    if (typeof c.s === 'number' && Number.isFinite(c.s) && typeof c.m === 'string') return c;
  } catch {
    // fall through
  }
  throw new DcpValueError('INVALID_CURSOR', 'cursor is not one this server issued');
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function summarize(id: string, state: CheckpointStateRecord): CheckpointSummary {
  return {
    id,
    state: state.status,
    createdAt: iso(state.createdAt),
    worldSize: state.worldSize,
    totalBytes: state.totalBytes,
    storedBytes: state.status === 'committed' ? state.storedBytes : 0,
    itemCount: state.itemCount,
    ...(state.status === 'committed' && state.step !== undefined ? { step: state.step } : {}),
    ...(state.status === 'committed' && state.metrics !== undefined ? { metrics: { ...state.metrics } } : {}),
  };
}

export class CheckpointCatalog {
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly keySpace: KeySpace;
  private readonly lockTtlMs: number;
  private readonly lockNodes: LockNodes;
  private readonly pool: SegmentRecycler | undefined;

  constructor(options: CheckpointCatalogOptions) {
    this.keySpace = new KeySpace(options.prefix ?? DEFAULT_PREFIX);
    const { client, owned } = connect(options.redis);
    this.client = client;
    this.ownsClient = owned;
    this.lockTtlMs = intOption('lockTtlMs', options.lockTtlMs, DEFAULT_LOCK_TTL_MS);
    this.lockNodes = new LockNodes(options.lockRedis, () => this.client);
    const recycleTtlMs = intOption('recycleTtlMs', options.recycleTtlMs, 0, { min: 0 });
    this.pool = SegmentPool.for(client, this.keySpace, recycleTtlMs);
  }

  get redis(): RedisClient {
    return this.client;
  }

  /** One page of checkpoints, newest first. */
  async list(options: ListOptions = {}): Promise<CheckpointPage> {
    return translatingRedisErrors(() => this.listPage(options));
  }

  /** Summary and metadata of one checkpoint (CHECKPOINT_NOT_FOUND when there is none). */
  async get(id: string): Promise<CheckpointDetails> {
    return translatingRedisErrors(() => this.details(id));
  }

  /** Checks every data key exists with the right length; `deep` also checks every part checksum. */
  async validate(id: string, options: ValidateOptions = {}): Promise<ValidationReport> {
    return translatingRedisErrors(() => this.check(id, options));
  }

  /**
   * Deletes a checkpoint under its lock: true when it removed one, false when there was
   * none (like Map.prototype.delete). A running save makes it fail with CHECKPOINT_LOCKED,
   * a load's pin with CHECKPOINT_IN_USE.
   */
  async delete(id: string, options: DeleteOptions = {}): Promise<boolean> {
    return tracedDelete(id, (event) => translatingRedisErrors(() => this.remove(id, options, event)));
  }

  /**
   * Collects incomplete checkpoints (crashed or failed saves, interrupted deletes) under
   * `prefix` whose save began more than `incompleteOlderThanMs` ago (default 10 min). A save
   * in progress is never collected: its lease makes it `writing`, and its lock makes the
   * delete refuse (the state is read again under the lock). Also drops the superseded saves
   * of committed checkpoints (`released`) unless a load pins them. `dryRun` only reports. Then
   * (unless dryRun) stored pieces of incremental saves that no save holds are unlinked
   * (docs/format.md, "Incremental saves": the sweep).
   */
  async gc(options: GcOptions = {}): Promise<GcResult> {
    return translatingRedisErrors(async () => {
      const result = await collectGarbage(this.client, this.keySpace, options, (id, onlyIf) => this.delete(id, { onlyIf }), (id) => this.releaseSuperseded(id));
      if (!options.dryRun && (options.sweepPieces ?? true)) await sweepPieces(this.client, this.keySpace);
      return result;
    });
  }

  /** Every checkpoint whose id starts with `prefix`, with its state (index and state hashes only; for the CheckpointManager and gc). */
  async states(prefix = ''): Promise<{ entries: CheckpointEntry[]; now: number }> {
    return translatingRedisErrors(() => readCheckpointStates(this.client, this.keySpace, prefix));
  }

  /** What checkpoints hold in Redis: used/max memory, committed, writing, incomplete and pooled bytes, the largest run prefixes. */
  async usage(options: UsageOptions = {}): Promise<UsageReport> {
    return translatingRedisErrors(() => catalogUsage(this.client, this.keySpace, options));
  }

  private async listPage(options: ListOptions): Promise<CheckpointPage> {
    const limit = options.limit ?? LIST_LIMIT_DEFAULT;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT_MAX) throw new DcpValueError('INVALID_LIMIT', `limit must be an integer from 1 to ${LIST_LIMIT_MAX}`);
    const prefix = options.prefix ?? '';
    const cursor = options.cursor ? decodeCursor(options.cursor) : undefined;
    const items: CheckpointSummary[] = [];
    // Unfiltered pages need one entry more than they show (to know whether a next page exists).
    const batch = prefix || options.state ? Math.min(1000, limit * 2) : Math.min(1000, limit + 1);
    // Newest first: score descending, then member descending (Redis' REV order for ties).
    const isAfter = (e: Cursor, a: Cursor | undefined) => !a || e.s < a.s || (e.s === a.s && e.m < a.m);
    let after = cursor;
    let offset = 0;
    for (;;) {
      const { now, entries, states } = await readCatalogBatch(this.client, this.keySpace, after ? String(after.s) : '+inf', offset, batch, prefix);
      const fresh = entries.filter((e) => isAfter(e, after));
      if (fresh.length === 0) {
        if (entries.length < batch) return { items, nextCursor: null };
        offset += batch; // a run of ties longer than a batch: step over it
        continue;
      }
      offset = 0;
      const candidates = fresh.filter((e) => e.m.startsWith(prefix) && isValidCheckpointName(e.m));
      for (const [i, e] of candidates.entries()) {
        const state = parseState(states.get(e.m) ?? {}, now);
        if (!state) continue; // a stale entry (see repair()); listing only reads
        if (options.state && state.status !== options.state) continue;
        items.push(summarize(e.m, state));
        if (items.length === limit) {
          // The last page says so when nothing older is left (a filtered page cannot know without reading on).
          const more = i < candidates.length - 1 || entries.length === batch;
          return { items, nextCursor: more ? encodeCursor(e) : null };
        }
      }
      if (entries.length < batch) return { items, nextCursor: null };
      after = fresh.at(-1);
    }
  }

  /**
   * Removes catalog entries whose checkpoint is gone: left by a delete that died between
   * removing the control keys and the entry (list() skips them). Safe while saves run: a
   * save that recreates such an id re-adds its entry on commit. Returns the removed ids.
   */
  async repair(): Promise<{ removed: string[] }> {
    return translatingRedisErrors(() => this.removeStaleEntries());
  }

  private async removeStaleEntries(): Promise<{ removed: string[] }> {
    const removed: string[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.client.zscan(this.keySpace.catalog(), cursor, 'COUNT', 500);
      cursor = next;
      const ids = flat.filter((_, i) => i % 2 === 0).filter((id) => isValidCheckpointName(id));
      const hashes = await hgetallMany(this.client, ids.map((id) => this.keySpace.checkpoint(id).state));
      const stale = ids.filter((_, i) => Object.keys(hashes[i]!).length === 0);
      if (stale.length > 0) {
        await this.client.zrem(this.keySpace.catalog(), ...stale);
        removed.push(...stale);
      }
    } while (cursor !== '0');
    return { removed: [...new Set(removed)] };
  }

  private async details(id: string): Promise<CheckpointDetails> {
    const store = this.store(id);
    const { state, metadataJson } = await store.stateAndMetadata();
    if (!state) throw new CheckpointNotFoundError(id);
    const metadata = state.status === 'committed' && metadataJson ? metadataFromJSON(metadataJson.toString('utf8')) : null;
    return { ...summarize(id, state), committedAt: state.committedAt ? iso(state.committedAt) : null, metadata };
  }

  private async check(id: string, options: ValidateOptions): Promise<ValidationReport> {
    const store = this.store(id);
    const { state, metadataJson } = await store.stateAndMetadata();
    if (!state) throw new CheckpointNotFoundError(id);
    if (state.status !== 'committed' || !metadataJson) {
      return { ok: false, problems: [{ kind: 'not_committed', message: `checkpoint is ${state.deleting ? 'being deleted' : state.status}, not committed` }] };
    }
    let metadata: Metadata;
    let storage: StorageData;
    try {
      metadata = metadataFromJSON(metadataJson.toString('utf8'));
      storage = parseStorageData(metadata.storageData);
    } catch (err) {
      return { ok: false, problems: [{ kind: 'metadata_invalid', message: (err as Error).message }] };
    }
    const problems = await verifyCheckpointData(this.client, store.keys, metadata, storage, options);
    // A damaged piece of an incremental save damages every checkpoint sharing it: name them all.
    const pieceOf = (key: string | undefined) => (key === undefined ? undefined : this.keySpace.pieceIdOf(key));
    const pieces = [...new Set(problems.flatMap((p) => pieceOf(p.key) ?? []))];
    const sharing = await checkpointsReferencing(this.client, this.keySpace, pieces);
    const withSharing = problems.map((p) => (pieceOf(p.key) !== undefined ? { ...p, sharedWith: sharing.get(pieceOf(p.key)!) ?? [] } : p));
    return { ok: problems.length === 0, problems: withSharing };
  }

  private async remove(id: string, options: DeleteOptions, event: DeleteEvent | undefined): Promise<boolean> {
    const store = this.store(id);
    const state = await store.state();
    if (!state) return false;
    if (event) event.bytes = state.totalBytes;
    return this.underLock(store, async (held) => {
      if (options.onlyIf) {
        const state = await store.state();
        if (!state || !options.onlyIf(state)) return false;
      }
      const token = await store.nextToken();
      const saveIds = await store.beginDelete(token);
      const pool = options.recycleTtlMs === undefined ? this.pool : SegmentPool.for(this.client, this.keySpace, options.recycleTtlMs);
      for (const saveId of saveIds) {
        const dataKeys = await setMembers(this.client, store.keys.dataIndex(saveId));
        await (pool ? pool.retire(dataKeys) : unlinkKeys(this.client, dataKeys));
        // Pieces of an incremental save: released (unlinked once no other save holds them), never pooled.
        await releasePieces(this.client, this.keySpace, store.keys, saveId);
      }
      if (held.lost) throw new FencedError(id, 'delete lost its lock before removing the control keys; run delete again');
      await store.finishDelete(token, saveIds);
      return true;
    });
  }

  /** gc: drops the superseded saves of committed `id` under its lock (CHECKPOINT_IN_USE while pinned); false when none. */
  private async releaseSuperseded(id: string): Promise<boolean> {
    const store = this.store(id);
    return this.underLock(store, async () => {
      const token = await store.nextToken();
      const saveIds = await store.beginCollect(token);
      for (const saveId of saveIds) await store.dropSave(token, saveId, this.pool);
      return saveIds.length > 0;
    });
  }

  /** Runs `fn` holding the checkpoint's lock (not waiting for a holder: CHECKPOINT_LOCKED), extended while it runs. */
  private async underLock<T>(store: CheckpointStore, fn: (held: HeldLock) => Promise<T>): Promise<T> {
    const held = await this.lockNodes.acquire(store.keys.lock, store.id, { ttlMs: this.lockTtlMs, waitMs: 0 });
    try {
      held.startAutoExtend(async () => {});
      return await fn(held);
    } finally {
      await held.release();
    }
  }

  async close(): Promise<void> {
    await this.lockNodes.close();
    if (this.ownsClient) await closeClient(this.client);
  }

  private store(id: string): CheckpointStore {
    assertValidCheckpointName(id);
    return new CheckpointStore(this.client, this.keySpace, id);
  }
}
