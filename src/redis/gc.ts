/**
 * CheckpointCatalog.gc(): collects incomplete checkpoints (crashed or failed saves,
 * interrupted deletes) older than a threshold. Never a save in progress: `writing` ones
 * (valid lease) are skipped, and each delete re-reads the state under the checkpoint lock,
 * which a running save holds (CHECKPOINT_LOCKED: kept). Then the superseded saves of
 * committed checkpoints (held by a load pin at their overwrite, or a failed drop), unless
 * still pinned. See docs/format.md, "Garbage collection".
 */
import { isErrorCode } from '../core/error-codes.js';
import { DcpValueError } from '../core/errors.js';
import type { GcResult } from './catalog-schemas.js';
import { readCheckpointStates, type CheckpointEntry } from './catalog-states.js';
import type { CheckpointStateRecord } from './checkpoint-store.js';
import type { RedisClient } from './connection.js';
import { integersPerKey } from './per-key.js';
import type { KeySpace } from './keys.js';

export const DEFAULT_GC_INCOMPLETE_OLDER_THAN_MS = 600_000;

export interface GcOptions {
  /** Only ids starting with this (e.g. "run1/"). */
  readonly prefix?: string;
  /** Collect incomplete checkpoints whose last save began at least this long ago (default 10 min). */
  readonly incompleteOlderThanMs?: number;
  /** Report what would be deleted; delete nothing. */
  readonly dryRun?: boolean;
  /**
   * Also unlink stored pieces no save holds (a scan of every piece key; default true unless
   * dryRun). The CheckpointManager's gc after each commit passes false unless a save failed.
   */
  readonly sweepPieces?: boolean;
}

/** Deletes `id` if its state, read under the lock, passes `onlyIf`; false when it did not. */
export type ConditionalDelete = (id: string, onlyIf: (state: CheckpointStateRecord) => boolean) => Promise<boolean>;

/** Drops the superseded saves of committed `id` under its lock; false when it had none (any more). */
export type ReleaseSuperseded = (id: string) => Promise<boolean>;

/** When the checkpoint's last save began (what its age counts from). */
function startedAt(state: CheckpointStateRecord): number {
  return state.pendingSince ?? state.createdAt;
}

/** Codes that mean "someone is using it right now": kept, retried by the next gc. */
const BUSY = new Set(['CHECKPOINT_LOCKED', 'CHECKPOINT_IN_USE', 'FENCED']);

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && isErrorCode(code) && BUSY.has(code);
}

export async function collectGarbage(client: RedisClient, keySpace: KeySpace, options: GcOptions, remove: ConditionalDelete, release: ReleaseSuperseded): Promise<GcResult> {
  const olderThan = options.incompleteOlderThanMs ?? DEFAULT_GC_INCOMPLETE_OLDER_THAN_MS;
  if (!Number.isFinite(olderThan) || olderThan < 0) throw new DcpValueError('INVALID_PARAMETER', `incompleteOlderThanMs must be a non-negative number of ms (got ${String(olderThan)})`);
  const { entries, now } = await readCheckpointStates(client, keySpace, options.prefix ?? '');
  const deleted: string[] = [];
  const kept: string[] = [];
  for (const { id, state } of entries) {
    if (state.status === 'committed') continue;
    const old = (s: CheckpointStateRecord) => s.status === 'incomplete' && now - startedAt(s) >= olderThan;
    if (!old(state)) {
      kept.push(id);
      continue;
    }
    if (options.dryRun) {
      deleted.push(id);
      continue;
    }
    try {
      // Re-checked under the lock: a save that took the id over since is no longer incomplete.
      (await remove(id, (s) => s.status === 'incomplete' && startedAt(s) <= startedAt(state))) ? deleted.push(id) : kept.push(id);
    } catch (err) {
      if (isBusy(err)) kept.push(id);
      else throw err;
    }
  }
  const released = await collectSuperseded(client, keySpace, entries, now, options, release, kept);
  return { deleted, kept, ...(released.length > 0 ? { released } : {}) };
}

/**
 * Committed checkpoints that index more saves than their committed and pending ones have
 * superseded saves; each is released under its lock unless a load pins it (kept).
 */
async function collectSuperseded(
  client: RedisClient,
  keySpace: KeySpace,
  entries: readonly CheckpointEntry[],
  now: number,
  options: GcOptions,
  release: ReleaseSuperseded,
  kept: string[],
): Promise<string[]> {
  const committed = entries.filter((e) => e.state.status === 'committed');
  const sizes = await integersPerKey(client, 'scard', committed.map((e) => keySpace.checkpoint(e.id).saves));
  const candidates = committed.filter((e, i) => sizes[i]! > 1 + (e.state.pendingSaveId ? 1 : 0));
  const released: string[] = [];
  for (const { id } of candidates) {
    if (options.dryRun) {
      ((await client.zcount(keySpace.checkpoint(id).pins, `(${now}`, '+inf')) > 0 ? kept : released).push(id);
      continue;
    }
    try {
      if (await release(id)) released.push(id);
    } catch (err) {
      if (isBusy(err)) kept.push(id);
      // Deleted or being deleted since it was read: the delete drops every save.
      else if (!['CHECKPOINT_NOT_FOUND', 'CHECKPOINT_NOT_COMMITTED'].includes(String((err as { code?: unknown }).code))) throw err;
    }
  }
  return released;
}
