/** applyRetention: a table of committed steps and policies → the survivors (pure; no Redis). */
import t from 'tap';
import { applyRetention, checkRetention, type RetentionCandidate, type RetentionPolicy } from '../../src/manager/retention.js';

const NOW = 1_000_000_000;
const HOUR = 3_600_000;

/** Steps committed one hour apart in the order given (the last one just now), with optional losses. */
function history(steps: readonly number[], loss: Record<number, number> = {}): RetentionCandidate[] {
  return steps.map((step, i) => ({ step, committedAt: NOW - (steps.length - 1 - i) * HOUR, ...(step in loss ? { metrics: { loss: loss[step]! } } : {}) }));
}

interface Row {
  readonly name: string;
  readonly steps: readonly number[];
  readonly loss?: Record<number, number>;
  readonly policy: RetentionPolicy;
  readonly protect?: readonly number[];
  readonly keep: readonly number[];
}

const table: Row[] = [
  { name: 'no rule keeps everything', steps: [1, 2, 3], policy: {}, keep: [1, 2, 3] },
  { name: 'keepLast 2', steps: [100, 200, 300, 400], policy: { keepLast: 2 }, keep: [300, 400] },
  { name: 'keepLast larger than the history', steps: [1, 2], policy: { keepLast: 5 }, keep: [1, 2] },
  { name: 'keepLast 0 alone keeps only the protected step', steps: [1, 2, 3], policy: { keepLast: 0 }, protect: [3], keep: [3] },
  { name: 'keepEvery 1000', steps: [500, 1000, 1500, 2000, 2500], policy: { keepEvery: 1000 }, keep: [1000, 2000] },
  { name: 'keepWithinMs: committed in the last 2 hours', steps: [1, 2, 3, 4, 5], policy: { keepWithinMs: 2 * HOUR }, keep: [3, 4, 5] },
  { name: 'keepBest 2 min loss', steps: [1, 2, 3, 4], loss: { 1: 0.9, 2: 0.2, 3: 0.5, 4: 0.3 }, policy: { keepBest: { n: 2, metric: 'loss', mode: 'min' } }, keep: [2, 4] },
  { name: 'keepBest 1 max', steps: [1, 2, 3], loss: { 1: 0.9, 2: 0.2, 3: 0.5 }, policy: { keepBest: { n: 1, metric: 'loss', mode: 'max' } }, keep: [1] },
  { name: 'keepBest keeps steps without the metric', steps: [1, 2, 3, 4], loss: { 1: 0.1, 3: 0.5, 4: 0.7 }, policy: { keepBest: { n: 1, metric: 'loss', mode: 'min' } }, keep: [1, 2] },
  { name: 'keepBest ties: the newer step wins', steps: [1, 2, 3], loss: { 1: 0.5, 2: 0.5, 3: 0.9 }, policy: { keepBest: { n: 1, metric: 'loss', mode: 'min' } }, keep: [2] },
  // orbax#526: with best_fn set, the most recent checkpoints were evicted. Here latest AND best survive.
  { name: 'keep latest and best (orbax#526)', steps: [1, 2, 3, 4, 5], loss: { 1: 0.1, 2: 0.5, 3: 0.6, 4: 0.7, 5: 0.8 }, policy: { keepLast: 1, keepBest: { n: 1, metric: 'loss', mode: 'min' } }, keep: [1, 5] },
  { name: 'keepLast 2 + keepEvery 3', steps: [1, 2, 3, 4, 5, 6, 7, 8], policy: { keepLast: 2, keepEvery: 3 }, keep: [3, 6, 7, 8] },
  { name: 'all rules combined', steps: [10, 20, 30, 40, 50, 60], loss: { 10: 0.1, 20: 0.9, 30: 0.8, 40: 0.7, 50: 0.6, 60: 0.5 }, policy: { keepLast: 1, keepEvery: 20, keepWithinMs: HOUR, keepBest: { n: 1, metric: 'loss', mode: 'min' } }, keep: [10, 20, 40, 50, 60] },
  // Saved out of order (a rollback re-saved older steps after newer ones): "latest" is the highest step; the step just committed is protected.
  { name: 'out of order: keepLast judges by step number', steps: [100, 300, 200], policy: { keepLast: 2 }, keep: [200, 300] },
  { name: 'out of order: the step just committed survives even when older', steps: [300, 400, 500, 150], policy: { keepLast: 2 }, protect: [150], keep: [150, 400, 500] },
  { name: 'out of order with keepWithinMs: by commit time, not step', steps: [500, 400, 300], policy: { keepWithinMs: HOUR }, keep: [300, 400] },
  { name: 'protect keeps a step no rule keeps', steps: [1, 2, 3], policy: { keepEvery: 2 }, protect: [3], keep: [2, 3] },
];

for (const row of table) {
  t.test(row.name, async (t) => {
    const decision = applyRetention(history(row.steps, row.loss), checkRetention(row.policy), { now: NOW, ...(row.protect ? { protect: row.protect } : {}) });
    t.same(decision.keep, [...row.keep].sort((a, b) => a - b), 'survivors');
    t.same(decision.remove, [...new Set(row.steps)].filter((s) => !row.keep.includes(s)).sort((a, b) => a - b), 'deleted: every other step');
  });
}

t.test('bad policies are DcpValueErrors naming the option', async (t) => {
  t.throws(() => checkRetention({ keepLast: -1 }), { code: 'DCP_VALUE_ERROR', message: /keepLast/ });
  t.throws(() => checkRetention({ keepEvery: 0 }), { code: 'DCP_VALUE_ERROR', message: /keepEvery/ });
  t.throws(() => checkRetention({ keepWithinMs: -5 }), { code: 'DCP_VALUE_ERROR', message: /keepWithinMs/ });
  t.throws(() => checkRetention({ keepBest: { n: 1, metric: 'loss', mode: 'median' as 'min' } }), { code: 'DCP_VALUE_ERROR', message: /mode/ });
  t.throws(() => checkRetention({ keepBest: { n: 1, metric: '', mode: 'min' } }), { code: 'DCP_VALUE_ERROR', message: /metric/ });
});
