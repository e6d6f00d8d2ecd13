/**
 * The checkpoints of one run as CheckpointManager sees them: ids `${run}/step-${step}` whose
 * commit recorded that same step (anything else under the run prefix was not made by a
 * manager and is never touched), and `prune`, which applies a retention policy to them.
 * Shared by the manager and `redis-dcp prune`. See README "CheckpointManager".
 */
import { DcpError } from '../core/errors.js';
import type { CheckpointCatalog, CheckpointEntry } from '../redis/catalog.js';
import { assertValidCheckpointName } from '../redis/checkpoint-id.js';
import { applyRetention, type RetentionCandidate, type RetentionPolicy } from './retention.js';

export interface RunStep extends RetentionCandidate {
  readonly id: string;
  readonly totalBytes: number;
}

export function stepId(run: string, step: number): string {
  return `${run}/step-${step}`;
}

/** Checks the run name makes valid ids (INVALID_CHECKPOINT_ID otherwise). */
export function assertValidRun(run: string): void {
  assertValidCheckpointName(stepId(run, 0));
}

/** The step of a manager-made checkpoint of `run`, or undefined for any other entry. */
export function stepOf(run: string, entry: CheckpointEntry): number | undefined {
  const prefix = `${run}/step-`;
  if (!entry.id.startsWith(prefix)) return undefined;
  const rest = entry.id.slice(prefix.length);
  if (!/^(0|[1-9]\d{0,14})$/.test(rest)) return undefined;
  const step = Number(rest);
  return entry.state.step === step ? step : undefined;
}

/** Committed steps of `run`, ascending, and the server time they were read at. */
export async function runSteps(catalog: CheckpointCatalog, run: string): Promise<{ steps: RunStep[]; now: number }> {
  const { entries, now } = await catalog.states(`${run}/step-`);
  const steps: RunStep[] = [];
  for (const entry of entries) {
    const step = stepOf(run, entry);
    if (step === undefined || entry.state.status !== 'committed') continue;
    steps.push({ id: entry.id, step, committedAt: entry.state.committedAt ?? entry.state.createdAt, metrics: entry.state.metrics, totalBytes: entry.state.totalBytes });
  }
  return { steps: steps.sort((a, b) => a.step - b.step), now };
}

export interface PruneOptions {
  readonly dryRun?: boolean;
  /** Steps never deleted (the one just committed). */
  readonly protect?: readonly number[];
  /** Judge as if this step were committed too (making room before a save); it is never deleted. */
  readonly incoming?: RetentionCandidate;
  /** Retire deleted segments into the recycling pool for this long (0: unlink). */
  readonly recycleTtlMs?: number;
}

export interface PruneResult {
  /** Deleted (with dryRun: would be deleted). */
  readonly deleted: string[];
  /** Kept by a rule, or skipped below. */
  readonly kept: string[];
  /** Retention would delete them but a load pins them or a save/delete holds their lock: retried next time. */
  readonly busy: string[];
}

const BUSY = new Set(['CHECKPOINT_IN_USE', 'CHECKPOINT_LOCKED', 'FENCED']);

/** Applies `policy` to the committed steps of `run`: deletes what no rule keeps, one checkpoint at a time. */
export async function prune(catalog: CheckpointCatalog, run: string, policy: RetentionPolicy, options: PruneOptions = {}): Promise<PruneResult> {
  const { steps, now } = await runSteps(catalog, run);
  const candidates: RetentionCandidate[] = options.incoming ? [...steps.filter((s) => s.step !== options.incoming!.step), options.incoming] : steps;
  const protect = [...(options.protect ?? []), ...(options.incoming ? [options.incoming.step] : [])];
  const decision = applyRetention(candidates, policy, { now, protect });
  const remove = new Set(decision.remove);
  const deleted: string[] = [];
  const kept: string[] = steps.filter((s) => !remove.has(s.step)).map((s) => s.id);
  const busy: string[] = [];
  for (const s of steps.filter((x) => remove.has(x.step))) {
    if (options.dryRun) {
      deleted.push(s.id);
      continue;
    }
    try {
      // Re-checked under the lock: still this run's committed step (not re-saved by someone else meanwhile).
      if (await catalog.delete(s.id, { onlyIf: (st) => st.status === 'committed' && st.step === s.step, ...(options.recycleTtlMs !== undefined ? { recycleTtlMs: options.recycleTtlMs } : {}) })) deleted.push(s.id);
      else kept.push(s.id);
    } catch (err) {
      if (err instanceof DcpError && BUSY.has(err.code)) busy.push(s.id);
      else throw err;
    }
  }
  return { deleted, kept: [...kept, ...busy].sort(), busy };
}
