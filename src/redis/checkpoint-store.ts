/**
 * The control plane of one checkpoint in Redis: its state hash, committed metadata,
 * save index and catalog entry. Every mutation is a fenced Lua script (scripts.ts);
 * this module turns their status replies into typed errors.
 */
import { Cluster } from 'ioredis';
import { DcpError } from '../core/errors.js';
import type { RedisClient } from './connection.js';
import { CheckpointExistsError, CheckpointInUseError, CheckpointNotCommittedError, CheckpointNotFoundError, FencedError } from './errors.js';
import { KeySpace, type CheckpointKeys } from './keys.js';
import { runScript } from './scripts.js';
import type { SegmentRecycler } from './segment-pool.js';
import { releasePieces } from './pieces.js';
import { unlinkKeys } from './unlink.js';

/** The states a checkpoint is listed in (served as `state`). */
export const CHECKPOINT_STATES = ['committed', 'writing', 'incomplete'] as const;
/** A checkpoint's state, derived from its state hash (served as `state`). */
export type CheckpointState = (typeof CHECKPOINT_STATES)[number];
/** @deprecated Old name of CheckpointState. */
export type CheckpointStatus = CheckpointState;

/** The parsed state hash (`P:ckpt:{ID}:state`) of a checkpoint. */
export interface CheckpointStateRecord {
  readonly status: CheckpointState;
  readonly fence: number;
  readonly createdAt: number;
  readonly committedAt?: number;
  readonly committedSaveId?: string;
  readonly pendingSaveId?: string;
  readonly leaseUntil?: number;
  readonly worldSize: number;
  readonly totalBytes: number;
  /** Bytes the committed save added to Redis (= totalBytes unless it was incremental). */
  readonly storedBytes: number;
  /** The committed save stored content-addressed pieces (docs/format.md, "Incremental saves"). */
  readonly incremental: boolean;
  readonly itemCount: number;
  readonly deleting: boolean;
  /** When the save in progress (or the last one that never committed) began. */
  readonly pendingSince?: number;
  /** Bytes the save in progress planned to write (an upper bound of what it holds). */
  readonly pendingBytes: number;
  /**
   * Bytes of replaced saves a load pin held at their overwrite (still in Redis until the next
   * unpinned commit or gc): full saves' totalBytes, and incremental saves' storedBytes apart.
   */
  readonly heldBytes: number;
  readonly heldPieceBytes: number;
  /** The training step and metrics the committed save was written with (CheckpointManager). */
  readonly step?: number;
  readonly metrics?: Readonly<Record<string, number>>;
}

/** Metrics as stored (JSON of finite numbers); anything else (tampered) reads as none. */
export function parseMetrics(text: string | undefined): Record<string, number> | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(value)) if (typeof v === 'number' && Number.isFinite(v)) out[k] = v;
    return out;
  } catch {
    return undefined;
  }
}

/** What a commit records besides the metadata: the step and metrics (both optional). */
export interface CommitInfo {
  readonly worldSize: number;
  readonly totalBytes: number;
  /** Bytes the save added to Redis (incremental saves; default totalBytes). */
  readonly storedBytes?: number | undefined;
  readonly incremental?: boolean | undefined;
  readonly itemCount: number;
  readonly step?: number | undefined;
  readonly metrics?: Readonly<Record<string, number>> | undefined;
}

/** What a commit left to drop: `garbage` now, or nothing while `heldByPins` > 0 load pins held the other saves. */
export interface CommitOutcome {
  readonly garbage: readonly string[];
  readonly heldByPins: number;
}

function num(v: string | undefined): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

/**
 * The state hash fields a checkpoint's status and its listed summary are derived from
 * (parseState, catalog.ts summarize): all a catalog page reads of each state hash.
 */
export const SUMMARY_STATE_FIELDS = ['deleting', 'committedSaveId', 'pendingSaveId', 'leaseUntil', 'createdAt', 'worldSize', 'pendingWorldSize', 'totalBytes', 'storedBytes', 'itemCount', 'step', 'metrics'] as const;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Derives the status from the raw hash; `now` is the Redis server's clock (ms). A hash read
 * with only SUMMARY_STATE_FIELDS gives the right status and summary fields (the rest read as 0).
 */
export function parseState(hash: Record<string, string>, now: number): CheckpointStateRecord | undefined {
  if (hash.createdAt === undefined && Object.keys(hash).length === 0) return undefined;
  const deleting = hash.deleting === '1';
  const leaseUntil = hash.leaseUntil === undefined ? undefined : num(hash.leaseUntil);
  let status: CheckpointState = 'incomplete';
  if (!deleting && hash.committedSaveId) status = 'committed';
  else if (!deleting && hash.pendingSaveId && leaseUntil !== undefined && leaseUntil >= now) status = 'writing';
  // Built in place, in the record's field order (optional fields absent, not undefined).
  const state: Partial<Mutable<CheckpointStateRecord>> = { status, fence: num(hash.fence), createdAt: num(hash.createdAt) };
  if (hash.committedAt) state.committedAt = num(hash.committedAt);
  if (hash.committedSaveId) state.committedSaveId = hash.committedSaveId;
  if (hash.pendingSaveId) state.pendingSaveId = hash.pendingSaveId;
  if (leaseUntil !== undefined) state.leaseUntil = leaseUntil;
  state.worldSize = num(hash.worldSize ?? hash.pendingWorldSize);
  state.totalBytes = num(hash.totalBytes);
  state.storedBytes = num(hash.storedBytes ?? hash.totalBytes);
  state.incremental = hash.incremental === '1';
  state.itemCount = num(hash.itemCount);
  state.deleting = deleting;
  if (hash.pendingSince) state.pendingSince = num(hash.pendingSince);
  state.pendingBytes = num(hash.pendingBytes);
  state.heldBytes = num(hash.heldBytes);
  state.heldPieceBytes = num(hash.heldPieceBytes);
  if (hash.step !== undefined && /^\d{1,15}$/.test(hash.step)) state.step = Number(hash.step);
  const metrics = parseMetrics(hash.metrics);
  if (metrics) state.metrics = metrics;
  return state as CheckpointStateRecord;
}

export async function serverTimeMs(client: RedisClient): Promise<number> {
  const node = client instanceof Cluster ? client.nodes('master')[0]! : client;
  const [sec, usec] = await node.time();
  return Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
}

/** All members of a (possibly large) set, without blocking Redis on SMEMBERS of millions. */
export async function setMembers(client: RedisClient, key: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.sscan(key, cursor, 'COUNT', 1000);
    cursor = next;
    out.push(...batch);
  } while (cursor !== '0');
  return [...new Set(out)];
}

export class CheckpointStore {
  readonly keys: CheckpointKeys;
  constructor(
    readonly client: RedisClient,
    readonly keySpace: KeySpace,
    readonly id: string,
  ) {
    this.keys = keySpace.checkpoint(id);
  }

  async state(): Promise<CheckpointStateRecord | undefined> {
    const [hash, now] = await Promise.all([this.client.hgetall(this.keys.state), serverTimeMs(this.client)]);
    return parseState(hash, now);
  }

  /** State and committed metadata read together (one slot, one transaction). */
  async stateAndMetadata(): Promise<{ state: CheckpointStateRecord | undefined; metadataJson: Buffer | null }> {
    const [results, now] = await Promise.all([this.client.multi().hgetall(this.keys.state).getBuffer(this.keys.meta).exec(), serverTimeMs(this.client)]);
    const [hashReply, metaReply] = results ?? [];
    if (hashReply?.[0]) throw hashReply[0];
    if (metaReply?.[0]) throw metaReply[0];
    return { state: parseState(hashReply![1] as Record<string, string>, now), metadataJson: metaReply![1] as Buffer | null };
  }

  /** A fresh, globally unique fencing token (never reused, even after a delete). */
  async nextToken(): Promise<string> {
    return String(await this.client.incr(this.keySpace.fenceCounter()));
  }

  async beginSave(token: string, saveId: string, leaseMs: number, worldSize: number, overwrite: boolean, plannedBytes = 0): Promise<number> {
    const reply = await runScript(this.client, 'begin-save', [this.keys.state, this.keys.saves], [token, saveId, Math.ceil(leaseMs), worldSize, overwrite ? 1 : 0, plannedBytes]);
    if (reply[0] === 'EXISTS') throw new CheckpointExistsError(this.id);
    this.expectOk(reply, 'begin save');
    const createdAt = Number(reply[1]);
    await this.client.zadd(this.keySpace.catalog(), 'NX', createdAt, this.id);
    return createdAt;
  }

  async extendLease(token: string, leaseMs: number): Promise<void> {
    this.expectOk(await runScript(this.client, 'extend-lease', [this.keys.state], [token, Math.floor(leaseMs)]), 'extend lease');
  }

  /**
   * Commits; returns the ids of other saves whose data is now garbage. While a load holds
   * an unexpired pin, none are: they stay indexed (`heldByPins` live pins) for the next
   * unpinned commit, a delete or gc (docs/format.md, "Load pins").
   */
  async commit(token: string, saveId: string, metadataJson: string, stats: CommitInfo): Promise<CommitOutcome> {
    const step = stats.step === undefined ? '' : String(stats.step);
    const metrics = stats.metrics === undefined ? '' : JSON.stringify(stats.metrics);
    const reply = await runScript(this.client, 'commit', [this.keys.state, this.keys.meta, this.keys.saves, this.keys.pins], [
      token,
      saveId,
      metadataJson,
      stats.worldSize,
      stats.totalBytes,
      stats.itemCount,
      step,
      metrics,
      stats.storedBytes === undefined ? '' : String(stats.storedBytes),
      stats.incremental ? '1' : '',
    ]);
    const held = reply[0] === 'HELD';
    if (!held) this.expectOk(reply, 'commit');
    // Second, idempotent step (the catalog is in another Cluster slot): repairs an entry
    // lost if the process died between begin-save and its ZADD.
    await this.client.zadd(this.keySpace.catalog(), 'NX', reply[1]!, this.id);
    return held ? { garbage: [], heldByPins: Number(reply[2]) } : { garbage: reply.slice(2), heldByPins: 0 };
  }

  /**
   * gc of a committed checkpoint: returns its superseded saves (indexed, neither committed
   * nor pending) and, when there are any, takes the fence with `token` so `dropSave` may
   * forget them. CHECKPOINT_IN_USE while a load holds an unexpired pin.
   */
  async beginCollect(token: string): Promise<string[]> {
    const reply = await runScript(this.client, 'begin-collect', [this.keys.state, this.keys.saves, this.keys.pins], [token]);
    if (reply[0] === 'NOT_FOUND') throw new CheckpointNotFoundError(this.id);
    if (reply[0] === 'NOT_COMMITTED') throw new CheckpointNotCommittedError(this.id, 'incomplete');
    if (reply[0] === 'IN_USE') throw new CheckpointInUseError(this.id);
    this.expectOk(reply, 'collect');
    return reply.slice(1);
  }

  /**
   * Gives up `saveId` (no token needed: it only affects that save). Returns "committed"
   * when that save is the committed one (its data must stay); after "aborted" the save
   * can never commit, so its data keys may be removed.
   */
  async abortSave(saveId: string): Promise<'aborted' | 'committed'> {
    const reply = await runScript(this.client, 'abort-save', [this.keys.state], [saveId]);
    if (reply[0] === 'COMMITTED') return 'committed';
    if (reply[0] === 'ABORTED') return 'aborted';
    throw new DcpError('REDIS_ERROR', `abort of "${this.id}": unexpected script reply ${reply.join(' ').slice(0, 200)}`);
  }

  /**
   * Removes a dropped save's data (segments into `pool` when recycling; pieces of an
   * incremental save are released, never pooled), then (fenced) forgets the save.
   */
  async dropSave(token: string, saveId: string, pool?: SegmentRecycler): Promise<number> {
    const index = this.keys.dataIndex(saveId);
    const dataKeys = await setMembers(this.client, index);
    let removed = pool ? await pool.retire(dataKeys) : await unlinkKeys(this.client, dataKeys);
    const released = await releasePieces(this.client, this.keySpace, this.keys, saveId);
    // Refused (the save is pending or committed): its piece index must stay, so the save is not forgotten.
    if (released === undefined) return removed;
    removed += released;
    const reply = await runScript(this.client, 'forget-save', [this.keys.state, this.keys.saves, index], [token, saveId]);
    if (reply[0] !== 'COMMITTED') this.expectOk(reply, 'forget save');
    return removed;
  }

  /** Marks the checkpoint deleting under `token`; returns its save ids. */
  async beginDelete(token: string): Promise<string[]> {
    const reply = await runScript(this.client, 'begin-delete', [this.keys.state, this.keys.saves, this.keys.pins], [token]);
    if (reply[0] === 'NOT_FOUND') throw new CheckpointNotFoundError(this.id);
    if (reply[0] === 'IN_USE') throw new CheckpointInUseError(this.id);
    this.expectOk(reply, 'delete');
    return reply.slice(1);
  }

  async finishDelete(token: string, saveIds: readonly string[]): Promise<void> {
    const keys = [this.keys.state, this.keys.meta, this.keys.saves, this.keys.pins, ...saveIds.flatMap((s) => [this.keys.dataIndex(s), this.keys.pieceTags(s)])];
    this.expectOk(await runScript(this.client, 'finish-delete', keys, [token]), 'delete');
    await this.client.zrem(this.keySpace.catalog(), this.id);
  }

  /**
   * Pins the committed checkpoint for a load (or extends the pin): delete refuses it until
   * `unpin` or the TTL. Throws like a load would when nothing is committed.
   */
  async pin(pinId: string, ttlMs: number): Promise<void> {
    const reply = await runScript(this.client, 'pin', [this.keys.state, this.keys.pins], [pinId, Math.ceil(ttlMs)]);
    if (reply[0] === 'NOT_FOUND') throw new CheckpointNotFoundError(this.id);
    if (reply[0] === 'NOT_COMMITTED') throw new CheckpointNotCommittedError(this.id, reply[1] ?? 'incomplete');
    this.expectOk(reply, 'pin');
  }

  /** Removes a load's pin (the key goes with its last member). */
  async unpin(pinId: string): Promise<void> {
    await this.client.zrem(this.keys.pins, pinId);
  }

  /** Records data keys before they are written, so a crash leaves nothing unfindable. */
  async recordDataKeys(saveId: string, dataKeys: readonly string[]): Promise<void> {
    const index = this.keys.dataIndex(saveId);
    for (let i = 0; i < dataKeys.length; i += 10_000) {
      const reply = await runScript(this.client, 'record-keys', [this.keys.state, index], [saveId, ...dataKeys.slice(i, i + 10_000)]);
      this.expectOk(reply, `recording the data keys of save ${saveId}`);
    }
  }

  private expectOk(reply: string[], what: string): void {
    if (reply[0] === 'OK') return;
    if (reply[0] === 'FENCED') throw new FencedError(this.id, `${what} refused: fencing token is stale (current ${reply[1]})`);
    if (reply[0] === 'LEASE_EXPIRED') throw new FencedError(this.id, `${what} refused: lease expired at ${reply[1]} (now ${reply[2]})`);
    if (reply[0] === 'NOT_PENDING') throw new FencedError(this.id, `${what} refused: the save in progress is ${reply[1]}`);
    throw new DcpError('REDIS_ERROR', `${what} of "${this.id}": unexpected script reply ${reply.join(' ').slice(0, 200)}`);
  }
}
