/**
 * dedupSavePlans, after DCP's test_dedup_save_plans.py / test_dedup_tensors.py and
 * the algorithm in _dedup_save_plans.py.
 */
import t from 'tap';
import { dedupSavePlans } from '../../src/core/dedup.js';
import { metadataIndex } from '../../src/core/metadata.js';
import { createWriteItemForBytes, createWriteItemForTensor, tensorStorageSize } from '../../src/core/planner-helpers.js';
import { WriteItemType, type SavePlan, type WriteItem } from '../../src/core/planner.js';
import { Tensor } from '../../src/core/tensor.js';

const fqns = (plan: SavePlan): string[] => plan.items.map((i) => i.index.fqn);

/** DCP's create_plan: a shard covering all of "tensor_0" (4 floats) plus a 10-float tensor only this rank has. */
function createPlan(secondFqn: string): SavePlan {
  const shard: WriteItem = { ...createWriteItemForTensor('tensor_0', new Tensor('float32', [4])), type: WriteItemType.SHARD };
  return { items: [shard, createWriteItemForTensor(secondFqn, new Tensor('float32', [10]))] };
}

t.test('dedup shards, saving to the lowest rank (test_dedup_shards_no_overlap)', async (t) => {
  const plans = dedupSavePlans([createPlan('r0'), createPlan('r1')], true);
  t.same(plans.map(fqns), [['tensor_0', 'r0'], ['r1']]);
});

t.test('dedup shards, balanced: the first duplicate goes to the (tied) lowest rank', async (t) => {
  const plans = dedupSavePlans([createPlan('r0'), createPlan('r1')]);
  t.same(plans.map(fqns), [['tensor_0', 'r0'], ['r1']]);
});

t.test('balancing follows the bytes assigned so far, in order of first appearance', async (t) => {
  const big = createWriteItemForTensor('big', new Tensor('float64', [100])); // 800 bytes
  const a = createWriteItemForTensor('a', new Tensor('float32', [10])); // 40 bytes
  const b = createWriteItemForTensor('b', new Tensor('float32', [10]));
  const c = createWriteItemForTensor('c', new Tensor('float32', [10]));
  const plans = dedupSavePlans([{ items: [big, a, b, c] }, { items: [big, a, b, c] }, { items: [a, b, c] }]);
  // big → rank 0 (800); a → rank 1 (40); b → rank 2 (40); c → rank 1 (tie 40/40 → lowest).
  t.same(plans.map(fqns), [['big'], ['a', 'c'], ['b']]);
  const lowest = dedupSavePlans([{ items: [big, a, b, c] }, { items: [big, a, b, c] }, { items: [a, b, c] }], true);
  t.same(lowest.map(fqns), [['big', 'a', 'b', 'c'], [], []]);
});

t.test('bytes items and empty tensors count as one byte each', async (t) => {
  const v = createWriteItemForBytes('v', 1);
  const w = createWriteItemForBytes('w', new Uint8Array(1000)); // size unknown to dedup, as in DCP
  const e = createWriteItemForTensor('e', new Tensor('float32', [0]));
  t.equal(tensorStorageSize(v), undefined);
  t.equal(tensorStorageSize(e), 0);
  const plans = dedupSavePlans([{ items: [v, w, e] }, { items: [v, w, e] }, { items: [v, w, e] }]);
  t.same(plans.map(fqns), [['v'], ['w'], ['e']]);
});

t.test('shards count their global size (as DCP does), so a rank with a shard of a big tensor looks full', async (t) => {
  const shard: WriteItem = {
    index: metadataIndex('big', [0]),
    type: WriteItemType.SHARD,
    tensorData: { chunk: { offsets: [0], sizes: [1] }, properties: createWriteItemForTensor('x', new Tensor('float32', [1])).tensorData!.properties, size: [1000] },
  };
  t.equal(tensorStorageSize(shard), 4000);
  const small = createWriteItemForTensor('small', new Tensor('float32', [1]));
  const plans = dedupSavePlans([{ items: [shard, small] }, { items: [small] }]);
  t.same(plans.map(fqns), [['big'], ['small']]);
});

t.test('identity is fqn + offset; the index hint is ignored', async (t) => {
  const base = createWriteItemForTensor('w', new Tensor('float32', [2]));
  const hinted: WriteItem = { ...base, index: { ...base.index, index: 5 } };
  const otherOffset: WriteItem = { ...base, type: WriteItemType.SHARD, index: metadataIndex('w', [2]) };
  const plans = dedupSavePlans([{ items: [base] }, { items: [hinted, otherOffset] }]);
  t.same(plans.map((p) => p.items.map((i) => i.index.offset)), [[[0]], [[2]]]);
});

t.test('inputs are not modified; plan fields are kept', async (t) => {
  const input: SavePlan[] = [
    { ...createPlan('r0'), plannerData: { x: ['x'] }, storageData: 's0' },
    { ...createPlan('r1'), plannerData: { y: ['y'] } },
  ];
  const before = JSON.stringify(input);
  const plans = dedupSavePlans(input);
  t.equal(JSON.stringify(input), before);
  t.same(plans[0]!.plannerData, { x: ['x'] });
  t.equal(plans[0]!.storageData, 's0');
  t.same(dedupSavePlans([]), []);
});
