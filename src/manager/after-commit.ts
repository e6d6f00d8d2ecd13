/**
 * What the coordinator does after a step commits: retention over the run's committed steps
 * (never the step just committed) and collection of the run's old incomplete saves. A
 * failure here does not undo the commit: it is reported in the result, and the next save
 * (or gc()) finishes the job. Also: error codes inside a save's CheckpointError.
 */
import { CheckpointError, DcpError } from '../core/errors.js';
import type { CheckpointCatalog } from '../redis/catalog.js';
import { InsufficientMemoryError } from '../redis/errors.js';
import type { RetentionPolicy } from './retention.js';
import { prune } from './run-steps.js';

export interface RetentionOutcome {
  /** Deleted by retention and incomplete gc after the commit. */
  readonly deleted: string[];
  /** Retention would delete them, but a load pins them (or a lock is held): retried by the next save. */
  readonly busy: string[];
  /** Deleted BEFORE the save, to make room in Redis (what retention would delete once it commits). */
  readonly freedForMemory: string[];
  /** Retention or gc failed (the step is committed all the same). */
  readonly retentionError?: string;
  /** How long retention and gc took on the coordinator (0 on other ranks). */
  readonly retentionMs: number;
}

export function emptyOutcome(): RetentionOutcome {
  return { deleted: [], busy: [], freedForMemory: [], retentionMs: 0 };
}

export interface AfterCommit {
  readonly catalog: CheckpointCatalog;
  readonly run: string;
  readonly step: number;
  readonly retention: RetentionPolicy;
  readonly gcAfterMs: number;
  readonly recycleTtlMs: number;
  /** Also sweep stray pieces (a full scan of the piece keys): only when one may exist (manager.ts). */
  readonly sweepPieces: boolean;
}

export async function afterCommit(a: AfterCommit): Promise<RetentionOutcome> {
  const started = performance.now();
  const retentionMs = () => Math.round((performance.now() - started) * 1000) / 1000;
  try {
    const pruned = await prune(a.catalog, a.run, a.retention, { protect: [a.step], recycleTtlMs: a.recycleTtlMs });
    const collected = await a.catalog.gc({ prefix: `${a.run}/`, incompleteOlderThanMs: a.gcAfterMs, sweepPieces: a.sweepPieces });
    return { deleted: [...pruned.deleted, ...collected.deleted], busy: pruned.busy, freedForMemory: [], retentionMs: retentionMs() };
  } catch (err) {
    return { ...emptyOutcome(), retentionError: err instanceof Error ? err.message : String(err), retentionMs: retentionMs() };
  }
}

/** Every error code in `err`: its own, a CheckpointError's per-rank failures (remote ranks' codes too) and causes. */
export function codesOf(err: unknown, depth = 0): string[] {
  if (depth > 4 || !(err instanceof Error)) return [];
  const out: string[] = [];
  if (err instanceof DcpError) out.push(err.code);
  const remote = (err as { remoteCode?: unknown }).remoteCode;
  if (typeof remote === 'string') out.push(remote);
  if (err instanceof CheckpointError) for (const e of err.failures.values()) out.push(...codesOf(e, depth + 1));
  if (err.cause) out.push(...codesOf(err.cause, depth + 1));
  return out;
}

/** The pre-flight's numbers inside a failed save (on the coordinator, which keeps its own error instances). */
export function findInsufficientMemory(err: unknown, depth = 0): InsufficientMemoryError | undefined {
  if (depth > 4 || !(err instanceof Error)) return undefined;
  if (err instanceof InsufficientMemoryError) return err;
  if (err instanceof CheckpointError) {
    for (const e of err.failures.values()) {
      const found = findInsufficientMemory(e, depth + 1);
      if (found) return found;
    }
  }
  return findInsufficientMemory(err.cause, depth + 1);
}
