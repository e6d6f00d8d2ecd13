/**
 * CheckpointManager: checkpoints of one training run in Redis, with steps, metrics,
 * retention, garbage collection and memory as a first-class concern (Orbax's
 * CheckpointManager, on redis-dcp). Every rank constructs it and calls save/asyncSave/load
 * in the same order; only the coordinator deletes. See README "CheckpointManager".
 */
import { asyncSave } from '../core/async-save.js';
import { DcpValueError, RemoteRankError } from '../core/errors.js';
import { intOption } from '../core/options.js';
import { load } from '../core/load.js';
import type { Metadata } from '../core/metadata.js';
import type { ProcessGroup } from '../core/process-group.js';
import type { ProgressCallback } from '../core/progress.js';
import { save } from '../core/save.js';
import type { StateDict } from '../core/state-dict.js';
import { CheckpointCatalog } from '../redis/catalog.js';
import { closeClient, connect, type RedisClient, type RedisInput } from '../redis/connection.js';
import { DEFAULT_PREFIX } from '../redis/keys.js';
import { redisMemory } from '../redis/memory.js';
import { RedisStorageReader, type RedisStorageReaderOptions } from '../redis/reader.js';
import { checkStepAndMetrics, RedisStorageWriter, type RedisStorageWriterOptions } from '../redis/writer.js';
import { afterCommit, codesOf, emptyOutcome, findInsufficientMemory, type RetentionOutcome } from './after-commit.js';
import { RecycleClock } from './recycle.js';
import { checkRetention, type RetentionPolicy } from './retention.js';
import { assertValidRun, prune, runSteps, stepId, type PruneResult } from './run-steps.js';

export interface CheckpointManagerOptions {
  /** An ioredis client (not closed by the manager) or a redis:// URL (opened and closed by it). */
  readonly redis: RedisInput;
  /** Key prefix (default "dcp"). */
  readonly prefix?: string;
  /** Checkpoint ids are `${run}/step-${step}`. */
  readonly run: string;
  /** All ranks construct the manager and call save/load together; only the coordinator deletes. */
  readonly processGroup?: ProcessGroup;
  readonly coordinatorRank?: number;
  /** A committed step is kept if ANY rule keeps it; no rule: everything is kept. */
  readonly retention?: RetentionPolicy;
  /** Incomplete checkpoints of the run older than this are collected after every save and by gc() (default 10 min). */
  readonly gcIncompleteAfterMs?: number;
  /**
   * Passed to every RedisStorageWriter. `incremental` unset: on (bytes an earlier step stored are
   * referenced, not written again; docs/performance.md "Incremental saves"); false turns it off.
   * `recycleTtlMs` unset: segment recycling (of non-incremental saves) is on with a TTL derived
   * from the observed save interval (docs/performance.md); 0 turns it off.
   */
  readonly writerOptions?: Omit<RedisStorageWriterOptions, 'redis' | 'prefix' | 'checkpointId' | 'step' | 'metrics'>;
  readonly readerOptions?: Omit<RedisStorageReaderOptions, 'redis' | 'prefix' | 'checkpointId'>;
}

export interface ManagerSaveOptions {
  /** Recorded with the checkpoint (keepBest, bestStep(), metrics(step), the catalog). */
  readonly metrics?: Readonly<Record<string, number>>;
  /** As save()'s and asyncSave()'s onProgress (README "Events, progress and metrics"). */
  readonly onProgress?: ProgressCallback;
}

/** What a save did: the commit and the retention/gc that followed it (the same on every rank). */
export interface ManagerSaveResult extends RetentionOutcome {
  readonly step: number;
  readonly id: string;
  readonly metadata: Metadata;
}

export interface ManagerAsyncSaveResponse {
  /** The state dict was copied: the caller may change it. */
  readonly staged: Promise<void>;
  /** Committed, and retention and gc ran. */
  readonly committed: Promise<ManagerSaveResult>;
}

export interface ManagerLoadOptions {
  /** Load this step (default: the latest committed one). */
  readonly step?: number;
  /** As load()'s onProgress. */
  readonly onProgress?: ProgressCallback;
}

export class CheckpointManager {
  readonly run: string;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  private readonly catalog: CheckpointCatalog;
  private readonly retention: RetentionPolicy;
  private readonly gcAfterMs: number;
  private readonly recycle: RecycleClock;
  private tail: Promise<unknown> = Promise.resolve();
  /** gc after the next commit also sweeps stray pieces: at the first save, and after a save failed (its ranks' late SETs). */
  private sweepDue = true;
  private closed = false;

  constructor(private readonly options: CheckpointManagerOptions) {
    assertValidRun(options.run);
    this.run = options.run;
    this.retention = checkRetention(options.retention);
    this.gcAfterMs = intOption('gcIncompleteAfterMs', options.gcIncompleteAfterMs, 600_000, { min: 0 });
    this.recycle = new RecycleClock(options.writerOptions?.recycleTtlMs);
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    const { client, owned } = connect(options.redis);
    this.client = client;
    this.ownsClient = owned;
    this.catalog = new CheckpointCatalog({ redis: client, prefix: this.prefix, ...(options.writerOptions?.lockRedis ? { lockRedis: options.writerOptions.lockRedis } : {}) });
  }

  private get isCoordinator(): boolean {
    return (this.options.processGroup?.rank ?? 0) === (this.options.coordinatorRank ?? 0);
  }

  /** Saves `step`, then (coordinator) applies retention and collects old incomplete saves; every rank resolves after that. */
  save(step: number, stateDict: StateDict, options: ManagerSaveOptions = {}): Promise<ManagerSaveResult> {
    this.checkSave(step, options);
    return this.enqueue(async () => {
      let metadata: Metadata;
      let freed: string[] = [];
      try {
        metadata = await this.noteFailure(this.saveOnce(step, stateDict, options));
      } catch (err) {
        // Memory pre-flight refused: delete what retention would delete once this step commits, then retry once.
        if (!codesOf(err).includes('INSUFFICIENT_MEMORY')) throw err;
        freed = await this.share(() => this.makeRoom(step, options, findInsufficientMemory(err)));
        if (freed.length === 0) throw err;
        metadata = await this.noteFailure(this.saveOnce(step, stateDict, options));
      }
      return this.finishStep(step, metadata, freed);
    });
  }

  /** Like asyncSave(): `staged` once copied, `committed` once committed and retention ran. */
  asyncSave(step: number, stateDict: StateDict, options: ManagerSaveOptions = {}): ManagerAsyncSaveResponse {
    this.checkSave(step, options);
    let stagedResolve!: () => void;
    let stagedReject!: (err: unknown) => void;
    const staged = new Promise<void>((resolve, reject) => ((stagedResolve = resolve), (stagedReject = reject)));
    const committed = this.enqueue(async () => {
      // No retry after staging (the caller may have changed the state dict): make room first when the last step's size would not fit.
      const freed = await this.share(() => this.roomForLastSize(step, options));
      const response = asyncSave(stateDict, { storageWriter: this.writer(step, options), checkpointId: stepId(this.run, step), ...this.groupOptions(), onProgress: options.onProgress });
      response.staged.then(stagedResolve, stagedReject);
      const metadata = await this.noteFailure(response.committed);
      return this.finishStep(step, metadata, freed);
    });
    committed.catch((err: unknown) => stagedReject(err));
    staged.catch(() => undefined);
    return { staged, committed };
  }

  /** Loads `step` (default the latest committed one) into `stateDict`; resolves the step, or null when the run has none. */
  load(stateDict: StateDict, options: ManagerLoadOptions = {}): Promise<number | null> {
    if (options.step !== undefined) checkStepAndMetrics(options.step, undefined);
    return this.enqueue(async () => {
      for (let attempt = 0; ; attempt++) {
        const step = options.step ?? (await this.share(() => this.latestStep()));
        if (step === null) return null;
        const reader = new RedisStorageReader({ ...this.options.readerOptions, redis: this.client, prefix: this.prefix });
        try {
          await load(stateDict, { storageReader: reader, checkpointId: stepId(this.run, step), ...this.groupOptions(), onProgress: options.onProgress });
          return step;
        } catch (err) {
          // The latest step went away between choosing and pinning it (deleted by hand or by a keepBest-only policy): choose again.
          const gone = codesOf(err).some((c) => c === 'CHECKPOINT_NOT_FOUND' || c === 'CHECKPOINT_NOT_COMMITTED');
          if (options.step !== undefined || !gone || attempt >= 2) throw err;
        } finally {
          await reader.close();
        }
      }
    });
  }

  /** Committed steps of the run, ascending. */
  async steps(): Promise<number[]> {
    return (await runSteps(this.catalog, this.run)).steps.map((s) => s.step);
  }

  async latestStep(): Promise<number | null> {
    return (await this.steps()).at(-1) ?? null;
  }

  /** The best committed step by keepBest's metric (null when none reported it). */
  async bestStep(): Promise<number | null> {
    const best = this.retention.keepBest;
    if (!best) throw new DcpValueError('DCP_VALUE_ERROR', 'bestStep() needs retention.keepBest (which metric, min or max)');
    let found: { step: number; value: number } | null = null;
    for (const s of (await runSteps(this.catalog, this.run)).steps) {
      const value = s.metrics?.[best.metric];
      if (value === undefined) continue;
      if (!found || (best.mode === 'min' ? value <= found.value : value >= found.value)) found = { step: s.step, value };
    }
    return found?.step ?? null;
  }

  /** The metrics recorded with `step` (null when the step is not committed or reported none). */
  async metrics(step: number): Promise<Record<string, number> | null> {
    const found = (await runSteps(this.catalog, this.run)).steps.find((s) => s.step === step);
    return found?.metrics ? { ...found.metrics } : null;
  }

  /** Deletes `step`: true when it existed (CHECKPOINT_IN_USE while a load pins it). */
  delete(step: number): Promise<boolean> {
    checkStepAndMetrics(step, undefined);
    return this.catalog.delete(stepId(this.run, step));
  }

  /** Applies retention and collects the run's old incomplete checkpoints now (on this process). */
  async gc(options: { readonly dryRun?: boolean } = {}): Promise<{ deleted: string[]; kept: string[] }> {
    const pruned = await prune(this.catalog, this.run, this.retention, { ...options, recycleTtlMs: this.recycle.ttlMs() });
    const collected = await this.catalog.gc({ prefix: `${this.run}/`, incompleteOlderThanMs: this.gcAfterMs, ...options });
    return { deleted: [...pruned.deleted, ...collected.deleted], kept: [...pruned.kept, ...collected.kept] };
  }

  /** Resolves once every save, load and retention started so far has ended (failures are the callers'). */
  async waitUntilFinished(): Promise<void> {
    await this.tail.catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.waitUntilFinished();
    await this.catalog.close();
    if (this.ownsClient) await closeClient(this.client);
  }

  private checkSave(step: number, options: ManagerSaveOptions): void {
    if (this.closed) throw new DcpValueError('DCP_VALUE_ERROR', 'the CheckpointManager is closed');
    checkStepAndMetrics(step, options.metrics);
  }

  /** Runs `task` after every earlier one (one operation at a time, in call order, like the ranks' collectives). */
  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.catch(() => undefined).then(task);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private groupOptions(): { processGroup?: ProcessGroup; coordinatorRank?: number } {
    const { processGroup, coordinatorRank } = this.options;
    return { ...(processGroup ? { processGroup } : {}), ...(coordinatorRank !== undefined ? { coordinatorRank } : {}) };
  }

  private writer(step: number, options: ManagerSaveOptions): RedisStorageWriter {
    const recycleTtlMs = this.recycle.ttlMs();
    const incremental = this.options.writerOptions?.incremental ?? true;
    return new RedisStorageWriter({ ...this.options.writerOptions, incremental, redis: this.client, prefix: this.prefix, step, ...(options.metrics ? { metrics: options.metrics } : {}), recycleTtlMs });
  }

  private async saveOnce(step: number, stateDict: StateDict, options: ManagerSaveOptions): Promise<Metadata> {
    const writer = this.writer(step, options);
    try {
      return await save(stateDict, { storageWriter: writer, checkpointId: stepId(this.run, step), ...this.groupOptions(), onProgress: options.onProgress });
    } finally {
      await writer.close();
    }
  }

  /** The coordinator runs `fn`; every rank gets its result or its failure (a barrier too). */
  private async share<T>(fn: () => Promise<T>): Promise<T> {
    const group = this.options.processGroup;
    if (!group) return fn();
    const src = this.options.coordinatorRank ?? 0;
    type Envelope = { readonly ok: T } | { readonly error: string; readonly code: string };
    let envelope: Envelope | undefined;
    if (group.rank === src) {
      envelope = await fn().then(
        (ok): Envelope => ({ ok }),
        (e: unknown): Envelope => ({ error: e instanceof Error ? e.message : String(e), code: codesOf(e)[0] ?? 'INTERNAL_ERROR' }),
      );
    }
    const shared = await group.broadcast<Envelope>(envelope, src);
    if ('error' in shared) throw new RemoteRankError('Error', shared.code, `coordinator: ${shared.error}`);
    return shared.ok;
  }

  /**
   * Deletes what the policy would delete once `step` commits (never `step`), but only when
   * that frees enough for the refused save (`need`); the ids deleted.
   */
  private async makeRoom(step: number, options: ManagerSaveOptions, need: { neededBytes: number; availableBytes: number } | undefined): Promise<string[]> {
    const incoming = { step, committedAt: Date.now(), metrics: options.metrics };
    const plan = await prune(this.catalog, this.run, this.retention, { incoming, dryRun: true });
    const sizes = new Map((await runSteps(this.catalog, this.run)).steps.map((s) => [s.id, s.totalBytes]));
    const freeable = plan.deleted.reduce((sum, id) => sum + (sizes.get(id) ?? 0), 0);
    if (plan.deleted.length === 0 || (need && need.availableBytes + freeable < need.neededBytes)) return [];
    const pruned: PruneResult = await prune(this.catalog, this.run, this.retention, { incoming, recycleTtlMs: 0 });
    return pruned.deleted;
  }

  /** Before an async save: when maxmemory is set and the last step's size does not fit, make room first. */
  private async roomForLastSize(step: number, options: ManagerSaveOptions): Promise<string[]> {
    const { maxMemory, usedMemory } = await redisMemory(this.client);
    if (maxMemory === null) return [];
    const last = (await runSteps(this.catalog, this.run)).steps.at(-1);
    if (!last || last.totalBytes <= maxMemory - usedMemory) return [];
    return this.makeRoom(step, options, { neededBytes: last.totalBytes, availableBytes: Math.max(0, maxMemory - usedMemory) });
  }

  private noteFailure<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      this.sweepDue = true;
      throw err;
    });
  }

  private async finishStep(step: number, metadata: Metadata, freed: string[]): Promise<ManagerSaveResult> {
    this.recycle.saved();
    const sweepPieces = this.sweepDue;
    this.sweepDue = false;
    const outcome = await this.share(async () =>
      this.isCoordinator ? afterCommit({ catalog: this.catalog, run: this.run, step, retention: this.retention, gcAfterMs: this.gcAfterMs, recycleTtlMs: this.recycle.ttlMs(), sweepPieces }) : emptyOutcome(),
    );
    if (outcome.retentionError) this.sweepDue ||= sweepPieces;
    return { step, id: stepId(this.run, step), metadata, ...outcome, freedForMemory: [...freed, ...outcome.freedForMemory] };
  }
}
