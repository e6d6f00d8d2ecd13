/**
 * The retention policy of CheckpointManager and `redis-dcp prune`, as a pure function:
 * committed steps in, the steps to keep and to delete out. A step is kept if ANY rule keeps
 * it; with no rule at all everything is kept. See README "CheckpointManager".
 */
import { DcpValueError } from '../core/errors.js';
import { intOption, positiveNumberOption } from '../core/options.js';

export interface KeepBest {
  /** How many of the best to keep. */
  readonly n: number;
  /** The metric reported with each save (`save(step, sd, { metrics })`). */
  readonly metric: string;
  /** 'min' (e.g. loss) or 'max' (e.g. accuracy). */
  readonly mode: 'min' | 'max';
}

export interface RetentionPolicy {
  /** The newest N committed steps (by step number). */
  readonly keepLast?: number;
  /** Steps divisible by K. */
  readonly keepEvery?: number;
  /** Steps committed within the last X ms. */
  readonly keepWithinMs?: number;
  /** The N best by a metric; steps that did not report the metric are kept too. */
  readonly keepBest?: KeepBest;
}

/** What retention knows of a committed step. */
export interface RetentionCandidate {
  readonly step: number;
  /** Commit time, ms since the epoch (Redis clock). */
  readonly committedAt: number;
  readonly metrics?: Readonly<Record<string, number>> | undefined;
}

export interface RetentionContext {
  /** The time `keepWithinMs` counts back from (ms, same clock as committedAt). */
  readonly now: number;
  /** Steps never deleted whatever the rules say (the step just committed). */
  readonly protect?: readonly number[];
}

export interface RetentionDecision {
  /** Ascending. */
  readonly keep: number[];
  /** Ascending. */
  readonly remove: number[];
}

/** Validates a policy (a DcpValueError naming the bad option) and returns it. */
export function checkRetention(policy: RetentionPolicy = {}): RetentionPolicy {
  if (policy.keepLast !== undefined) intOption('retention.keepLast', policy.keepLast, undefined, { min: 0 });
  if (policy.keepEvery !== undefined) intOption('retention.keepEvery', policy.keepEvery, undefined);
  if (policy.keepWithinMs !== undefined) positiveNumberOption('retention.keepWithinMs', policy.keepWithinMs, 0);
  const best = policy.keepBest;
  if (best !== undefined) {
    intOption('retention.keepBest.n', best.n, undefined, { min: 0 });
    if (typeof best.metric !== 'string' || best.metric.length === 0) throw new DcpValueError('DCP_VALUE_ERROR', 'retention.keepBest.metric must be a metric name');
    if (best.mode !== 'min' && best.mode !== 'max') throw new DcpValueError('DCP_VALUE_ERROR', `retention.keepBest.mode must be 'min' or 'max', got ${String(best.mode)}`);
  }
  return policy;
}

function hasRule(policy: RetentionPolicy): boolean {
  return policy.keepLast !== undefined || policy.keepEvery !== undefined || policy.keepWithinMs !== undefined || policy.keepBest !== undefined;
}

/** The steps `policy` keeps among `checkpoints` (one entry per step). */
export function applyRetention(checkpoints: readonly RetentionCandidate[], policy: RetentionPolicy, context: RetentionContext): RetentionDecision {
  const steps = [...new Set(checkpoints.map((c) => c.step))].sort((a, b) => a - b);
  if (!hasRule(policy)) return { keep: steps, remove: [] };
  const kept = new Set<number>(context.protect ?? []);
  if (policy.keepLast !== undefined) for (const step of steps.slice(Math.max(0, steps.length - policy.keepLast))) kept.add(step);
  if (policy.keepEvery !== undefined) for (const step of steps) if (step % policy.keepEvery === 0) kept.add(step);
  if (policy.keepWithinMs !== undefined) for (const c of checkpoints) if (context.now - c.committedAt <= policy.keepWithinMs) kept.add(c.step);
  const best = policy.keepBest;
  if (best !== undefined) {
    const scored: Array<{ step: number; value: number }> = [];
    for (const c of checkpoints) {
      const value = c.metrics?.[best.metric];
      // Orbax's keep_checkpoints_without_metrics: a step that did not report the metric is never judged by it.
      if (typeof value !== 'number' || !Number.isFinite(value)) kept.add(c.step);
      else scored.push({ step: c.step, value });
    }
    const sign = best.mode === 'min' ? 1 : -1;
    scored.sort((a, b) => sign * (a.value - b.value) || b.step - a.step); // ties: the newer step is better
    for (const s of scored.slice(0, best.n)) kept.add(s.step);
  }
  return { keep: steps.filter((s) => kept.has(s)), remove: steps.filter((s) => !kept.has(s)) };
}
