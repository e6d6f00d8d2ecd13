/**
 * The default planners, after DCP's test_planner.py (TestSavePlan, TestPlannerHelpers,
 * TestValidateGlobalPlan, TestLoadPlanner) plus this port's own error paths.
 */
import t from 'tap';
import { DefaultLoadPlanner, DefaultSavePlanner } from '../../src/core/default-planner.js';
import { dedupSavePlans } from '../../src/core/dedup.js';
import type { FlattenMappings, Metadata, TensorStorageMetadata } from '../../src/core/metadata.js';
import { DCP_VERSION, metadataIndex } from '../../src/core/metadata.js';
import { createDefaultGlobalSavePlan, createDefaultLocalLoadPlan, createDefaultLocalSavePlan } from '../../src/core/default-plans.js';
import { findGlobalPlanProblems, findOverlappingChunks, validateGlobalPlan } from '../../src/core/plan-validation.js';
import { createReadItemsForChunkList } from '../../src/core/planner-helpers.js';
import { findStateDictObject, tensorProperties, type FlatStateDict } from '../../src/core/planner-utils.js';
import { LoadItemType, WriteItemType, type SavePlan } from '../../src/core/planner.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';

/** DCP's create_sharded_tensor: 1-D, `shardsPerRank` shards of `shardSize` per rank, rank-major. */
function createShardedTensor(rank: number, worldSize: number, shardsPerRank: number, shardSize = 8): ShardedTensor {
  const shards = [];
  for (let idx = 0; idx < worldSize * shardsPerRank; idx++) {
    if (Math.floor(idx / shardsPerRank) !== rank) continue;
    shards.push({ offsets: [idx * shardSize], tensor: new Tensor('float32', [shardSize], Float32Array.from({ length: shardSize }, () => Math.random())) });
  }
  return new ShardedTensor([shardSize * worldSize * shardsPerRank], 'float32', shards);
}

function rankStateDict(rank: number, worldSize = 4): FlatStateDict {
  return { tensor: new Tensor('float32', [10]), value: [1, 2, 3], st: createShardedTensor(rank, worldSize, 1) };
}

/** DCP's _create_default_local_metadata, with the shards of every rank. */
function globalMetadata(worldSize: number, stateDictOf: (rank: number) => FlatStateDict): Metadata {
  const plans = Array.from({ length: worldSize }, (_, r) => createDefaultLocalSavePlan(stateDictOf(r), r === 0));
  return createDefaultGlobalSavePlan(dedupSavePlans(plans))[1];
}

t.test('local plan: TENSOR, BYTE_IO and SHARD items (TestSavePlan.test_local_plan)', async (t) => {
  const sd = rankStateDict(1);
  for (const isCoordinator of [false, true]) {
    const plan = createDefaultLocalSavePlan(sd, isCoordinator);
    t.equal(plan.items.length, 3, 'every rank plans every value (DCP >= 2.4)');
    const [wi, bytesWi, stWi] = plan.items;
    t.same(wi!.index, metadataIndex('tensor', [0]));
    t.equal(wi!.type, WriteItemType.TENSOR);
    t.same(wi!.tensorData!.size, [10]);
    t.same(wi!.tensorData!.properties, tensorProperties('float32'));
    t.same(wi!.tensorData!.chunk, { offsets: [0], sizes: [10] });

    t.same(bytesWi!.index, metadataIndex('value'));
    t.equal(bytesWi!.type, WriteItemType.BYTE_IO);
    t.equal(bytesWi!.tensorData, undefined);
    t.same(bytesWi!.bytesIoData, { encoding: 'json' });

    t.same(stWi!.index, metadataIndex('st', [8]));
    t.equal(stWi!.type, WriteItemType.SHARD);
    t.same(stWi!.tensorData!.size, [32], 'global size');
    t.same(stWi!.tensorData!.chunk, { offsets: [8], sizes: [8] });
  }
  const raw = createDefaultLocalSavePlan({ blob: new Uint8Array(5) }, true);
  t.same(raw.items[0]!.bytesIoData, { encoding: 'raw', nbytes: 5 });
  const scalar = createDefaultLocalSavePlan({ s: new Tensor('float64', []) }, true);
  t.same(scalar.items[0]!.index, metadataIndex('s', []));
  t.same(scalar.items[0]!.tensorData!.chunk, { offsets: [], sizes: [] });
});

t.test('global plan: metadata from all plans, index hints rewritten (test_global_plan)', async (t) => {
  const allPlans = dedupSavePlans([0, 1, 2, 3].map((r) => createDefaultLocalSavePlan(rankStateDict(r), r === 0)));
  const [finalPlans, metadata] = createDefaultGlobalSavePlan(allPlans);
  t.equal(metadata.version, DCP_VERSION);
  t.equal(finalPlans.length, 4);
  for (let p = 0; p < finalPlans.length; p++) {
    const newPlan = finalPlans[p]!;
    const oldPlan = allPlans[p]!;
    t.equal(newPlan.items.length, oldPlan.items.length);
    newPlan.items.forEach((newItem, i) => {
      const oldItem = oldPlan.items[i]!;
      t.equal(newItem.index.fqn, oldItem.index.fqn);
      t.same(newItem.index.offset, oldItem.index.offset);
      t.equal(newItem.type, oldItem.type);
      t.same(newItem.tensorData, oldItem.tensorData);
      const itemMd = metadata.stateDictMetadata[newItem.index.fqn]!;
      if (newItem.type === WriteItemType.BYTE_IO) {
        t.same(itemMd, { type: 'bytes', encoding: 'json' });
      } else {
        const tmd = itemMd as TensorStorageMetadata;
        t.equal(tmd.type, 'tensor');
        t.same(tmd.size, oldItem.tensorData!.size);
        t.same(tmd.properties, oldItem.tensorData!.properties);
        t.type(newItem.index.index, 'number');
        t.same(tmd.chunks[newItem.index.index!], oldItem.tensorData!.chunk, 'the hint points at the chunk');
      }
    });
  }
  const st = metadata.stateDictMetadata.st as TensorStorageMetadata;
  t.same(st.chunks, [0, 8, 16, 24].map((o) => ({ offsets: [o], sizes: [8] })));
  t.ok(validateGlobalPlan(finalPlans, metadata));
});

t.test('global plan rejects conflicting items instead of asserting', async (t) => {
  const tensorItem = createDefaultLocalSavePlan({ a: new Tensor('float32', [2]) }, true).items[0]!;
  t.throws(() => createDefaultGlobalSavePlan([{ items: [tensorItem] }, { items: [tensorItem] }]), { code: 'PLAN_INVALID', message: /"a" is planned more than once/ });
  const bytesItem = createDefaultLocalSavePlan({ a: 1 }, true).items[0]!;
  const shard = createDefaultLocalSavePlan({ a: new ShardedTensor([4], 'float32', [{ offsets: [0], tensor: new Tensor('float32', [2]) }]) }, true).items[0]!;
  t.throws(() => createDefaultGlobalSavePlan([{ items: [bytesItem] }, { items: [shard] }]), /both as bytes and as a tensor shard/);
  const otherSize = createDefaultLocalSavePlan({ a: new ShardedTensor([6], 'float32', [{ offsets: [2], tensor: new Tensor('float32', [2]) }]) }, true).items[0]!;
  t.throws(() => createDefaultGlobalSavePlan([{ items: [shard] }, { items: [otherSize] }]), /disagree on the tensor: float32 \[4\] vs float32 \[6\]/);
});

t.test('dedup keeps each replicated item once (test_dedup_plans)', async (t) => {
  const allPlans = [0, 1, 2, 3].map((r) => createDefaultLocalSavePlan(rankStateDict(r), r === 0));
  const deduped = dedupSavePlans(allPlans);
  t.equal(deduped.length, allPlans.length);
  deduped.forEach((plan, i) => t.ok(plan.items.length < allPlans[i]!.items.length || i === 0, `plan ${i} shrank or is rank 0`));
  const count = (fqn: string): number => deduped.flatMap((p) => p.items).filter((it) => it.index.fqn === fqn).length;
  t.equal(count('tensor'), 1);
  t.equal(count('value'), 1);
  t.equal(count('st'), 4, 'shards are distinct items, all kept');
  t.equal(allPlans[1]!.items.length, 3, 'input plans are not modified');
});

t.test('local load plan: exact copies (test_local_load_plan)', async (t) => {
  const sd = rankStateDict(1);
  const metadata = globalMetadata(4, rankStateDict);
  const plan = createDefaultLocalLoadPlan(sd, metadata);
  t.equal(plan.items.length, 3);
  const st = plan.items.find((ri) => ri.destIndex.fqn === 'st')!;
  const tensorRi = plan.items.find((ri) => ri.destIndex.fqn === 'tensor')!;
  const bytesRi = plan.items.find((ri) => ri.destIndex.fqn === 'value')!;
  t.same(st, { type: LoadItemType.TENSOR, destIndex: metadataIndex('st', [8], 0), destOffsets: [0], storageIndex: metadataIndex('st', [8], 1), storageOffsets: [0], lengths: [8] });
  t.same(tensorRi, { type: LoadItemType.TENSOR, destIndex: metadataIndex('tensor', [0], 0), destOffsets: [0], storageIndex: metadataIndex('tensor', [0], 0), storageOffsets: [0], lengths: [10] });
  t.same(bytesRi, { type: LoadItemType.BYTE_IO, destIndex: metadataIndex('value'), destOffsets: [0], storageIndex: metadataIndex('value'), storageOffsets: [0], lengths: [0] });
});

t.test('read items from chunks (TestPlannerHelpers.test_create_read_item_from_chunks)', async (t) => {
  const md: TensorStorageMetadata = {
    type: 'tensor',
    properties: tensorProperties('float32'),
    size: [16],
    chunks: [
      { offsets: [0], sizes: [8] },
      { offsets: [8], sizes: [8] },
    ],
  };
  const items = createReadItemsForChunkList('foo', md, [{ offsets: [4], sizes: [7] }]);
  t.equal(items.length, 2);
  t.same(items[0], { type: LoadItemType.TENSOR, destIndex: metadataIndex('foo', [4], 0), destOffsets: [0], storageIndex: metadataIndex('foo', [0], 0), storageOffsets: [4], lengths: [4] });
  t.same(items[1], { type: LoadItemType.TENSOR, destIndex: metadataIndex('foo', [4], 0), destOffsets: [4], storageIndex: metadataIndex('foo', [8], 1), storageOffsets: [0], lengths: [3] });
  const scalar: TensorStorageMetadata = { type: 'tensor', properties: tensorProperties('float32'), size: [], chunks: [{ offsets: [], sizes: [] }] };
  t.same(createReadItemsForChunkList('s', scalar, [{ offsets: [], sizes: [] }]), [
    { type: LoadItemType.TENSOR, destIndex: metadataIndex('s', [], 0), destOffsets: [], storageIndex: metadataIndex('s', [], 0), storageOffsets: [], lengths: [] },
  ]);
});

function tensorMetadata(size: number[], chunks: Array<[number[], number[]]>): Metadata {
  return {
    stateDictMetadata: {
      param: { type: 'tensor', properties: tensorProperties('float32'), size, chunks: chunks.map(([offsets, sizes]) => ({ offsets, sizes })) },
    },
  };
}

t.test('global plan validation (TestValidateGlobalPlan)', async (t) => {
  const ok = tensorMetadata([4], [0, 1, 2, 3].map((i) => [[i], [1]]));
  t.ok(validateGlobalPlan([{ items: [] }], ok), 'non-overlapping chunks');
  t.same(findGlobalPlanProblems(ok), []);

  const overlap = tensorMetadata([4], [
    [[0], [2]],
    [[1], [2]],
  ]);
  t.notOk(validateGlobalPlan([{ items: [] }], overlap), 'overlapping chunks');
  t.same(findGlobalPlanProblems(overlap).map((p) => p.kind), ['overlap'], 'volume matches, only the overlap is wrong');

  const outOfBounds = tensorMetadata([4], [
    [[0], [2]],
    [[2], [3]],
  ]);
  t.same(findGlobalPlanProblems(outOfBounds).map((p) => p.kind), ['out_of_bounds', 'coverage']);

  const gap = tensorMetadata([4, 4], [
    [[0, 0], [2, 4]],
    [[3, 0], [1, 4]],
  ]);
  const gapProblems = findGlobalPlanProblems(gap);
  t.same(gapProblems.map((p) => p.kind), ['coverage']);
  t.match(gapProblems[0]!.message, /key param has invalid fill: tensor-volume 16 chunks-volume 12/);

  const block2d = tensorMetadata([4, 6], [
    [[0, 0], [2, 3]],
    [[0, 3], [2, 3]],
    [[2, 0], [2, 3]],
    [[2, 3], [2, 3]],
  ]);
  t.same(findGlobalPlanProblems(block2d), [], 'a 2x2 block grid is valid');

  const scalar: Metadata = { stateDictMetadata: { s: { type: 'tensor', properties: tensorProperties('float32'), size: [], chunks: [{ offsets: [], sizes: [] }, { offsets: [], sizes: [] }] } } };
  t.same(findGlobalPlanProblems(scalar), [], 'scalars are skipped, as DCP does');
  const rank = tensorMetadata([4], [[[0, 0], [4, 1]]]);
  t.same(findGlobalPlanProblems(rank).map((p) => p.kind), ['rank']);
});

t.test('overlap sweep agrees with the all-pairs check on random layouts', async (t) => {
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  for (let trial = 0; trial < 300; trial++) {
    const ndim = 1 + rand(3);
    const chunks = Array.from({ length: 1 + rand(12) }, () => ({
      offsets: Array.from({ length: ndim }, () => rand(6)),
      sizes: Array.from({ length: ndim }, () => rand(4)),
    }));
    let pairs = 0;
    for (let i = 0; i < chunks.length; i++) {
      for (let j = i + 1; j < chunks.length; j++) {
        const a = chunks[i]!;
        const b = chunks[j]!;
        const empty = a.sizes.includes(0) || b.sizes.includes(0);
        const disjoint = a.offsets.some((o, d) => o >= b.offsets[d]! + b.sizes[d]! || b.offsets[d]! >= o + a.sizes[d]!);
        if (!empty && !disjoint) pairs++;
      }
    }
    const found = findOverlappingChunks(chunks, Number.MAX_SAFE_INTEGER);
    if (found.length !== pairs) t.fail(`trial ${trial}: sweep found ${found.length} pairs, all-pairs ${pairs}`);
  }
  t.pass('300 random layouts agree');
});

t.test('validation of 50k chunks is fast (rows, columns, blocks)', async (t) => {
  const layouts: Array<[string, number[], Array<{ offsets: number[]; sizes: number[] }>]> = [
    ['rows', [50_000, 8], Array.from({ length: 50_000 }, (_, i) => ({ offsets: [i, 0], sizes: [1, 8] }))],
    ['columns', [8, 50_000], Array.from({ length: 50_000 }, (_, i) => ({ offsets: [0, i], sizes: [8, 1] }))],
    ['blocks', [200 * 2, 250 * 2], Array.from({ length: 50_000 }, (_, i) => ({ offsets: [Math.floor(i / 250) * 2, (i % 250) * 2], sizes: [2, 2] }))],
  ];
  for (const [name, size, chunks] of layouts) {
    const md: Metadata = { stateDictMetadata: { w: { type: 'tensor', properties: tensorProperties('float32'), size, chunks } } };
    const started = performance.now();
    const problems = findGlobalPlanProblems(md);
    const ms = performance.now() - started;
    t.same(problems, [], `${name}: valid`);
    t.ok(ms < 2000, `${name}: validated in ${ms.toFixed(0)} ms`);
  }
});

function planAll(worldSize: number, stateDictOf: (rank: number) => StateDict, options?: ConstructorParameters<typeof DefaultSavePlanner>[0]): { planners: DefaultSavePlanner[]; plans: SavePlan[] } {
  const planners = Array.from({ length: worldSize }, () => new DefaultSavePlanner(options));
  const plans = planners.map((p, r) => {
    p.setUpPlanner(stateDictOf(r), { checkpointId: 'ckpt-1' }, r === 0);
    return JSON.parse(JSON.stringify(p.createLocalPlan())) as SavePlan; // plans cross ranks as JSON
  });
  return { planners, plans };
}

t.test('DefaultSavePlanner: global plan, merged mappings, storage meta, version', async (t) => {
  const sdOf = (r: number): StateDict => ({ model: { w: new Tensor('float32', [2, 2]), layers: [new Tensor('int8', [3])] }, rank: r === 0 ? { only: 'rank0' } : {}, step: 7 });
  const { planners, plans } = planAll(2, sdOf);
  const [globalPlan, metadata] = planners[0]!.createGlobalPlan(plans);
  t.equal(globalPlan.length, 2);
  t.equal(metadata.version, DCP_VERSION);
  t.same(metadata.storageMeta, { checkpointId: 'ckpt-1' });
  t.same(metadata.plannerData as FlattenMappings, {
    'model.w': ['model', 'w'],
    'model.layers.0': ['model', 'layers', 0],
    'rank.only': ['rank', 'only'],
    step: ['step'],
  });
  t.same(globalPlan.flatMap((p) => p.items).map((it) => it.index.fqn).sort(), ['model.layers.0', 'model.w', 'rank.only', 'step']);
});

t.test('DefaultSavePlanner: dedup options', async (t) => {
  const sdOf = (): StateDict => ({ a: new Tensor('float32', [100]), b: new Tensor('float32', [10]), c: new Tensor('float32', [10]), d: 1 });
  const balanced = planAll(3, sdOf);
  const [balancedPlan] = balanced.planners[0]!.createGlobalPlan(balanced.plans);
  t.same(balancedPlan.map((p) => p.items.map((i) => i.index.fqn)), [['a'], ['b'], ['c']].map((x, i) => (i === 1 ? [...x, 'd'] : x)), 'balanced by bytes, ties to the lowest rank');

  const lowest = planAll(3, sdOf, { dedupSaveToLowestRank: true });
  const [lowestPlan] = lowest.planners[0]!.createGlobalPlan(lowest.plans);
  t.same(lowestPlan.map((p) => p.items.length), [4, 0, 0]);

  const noDedup = planAll(2, (r) => ({ [`only${r}`]: new Tensor('float32', [1]) }), { dedupReplicatedTensors: false });
  const [noDedupPlan] = noDedup.planners[0]!.createGlobalPlan(noDedup.plans);
  t.same(noDedupPlan.map((p) => p.items.length), [1, 1]);
  const dup = planAll(2, () => ({ same: new Tensor('float32', [1]) }), { dedupReplicatedTensors: false });
  t.throws(() => dup.planners[0]!.createGlobalPlan(dup.plans), { code: 'PLAN_INVALID' }, 'without dedup, a replicated tensor is a conflict');
});

t.test('DefaultSavePlanner: invalid plans fail with "Failed to validate global plan"', async (t) => {
  const overlapping = (r: number): StateDict => ({ w: new ShardedTensor([8], 'float32', [{ offsets: [r * 3], tensor: new Tensor('float32', [4]) }]) });
  const a = planAll(2, overlapping);
  t.throws(() => a.planners[0]!.createGlobalPlan(a.plans), {
    name: 'GlobalPlanValidationError',
    code: 'PLAN_INVALID',
    message: /^Failed to validate global plan: key w has overlapping chunks: \{offsets \[0\], sizes \[4\]\} \{offsets \[3\], sizes \[4\]\}/,
  });
  const gaps = (r: number): StateDict => ({ w: new ShardedTensor([10], 'float32', [{ offsets: [r * 5], tensor: new Tensor('float32', [3]) }]) });
  const b = planAll(2, gaps);
  t.throws(() => b.planners[0]!.createGlobalPlan(b.plans), /^Failed to validate global plan: key w has invalid fill: tensor-volume 10 chunks-volume 6/);
  const tampered = planAll(1, () => ({ w: new Tensor('float32', [4]) }));
  const item = tampered.plans[0]!.items[0]!;
  const outOfBounds: SavePlan = { ...tampered.plans[0]!, items: [{ ...item, tensorData: { ...item.tensorData!, chunk: { offsets: [2], sizes: [4] } } }] };
  t.throws(() => tampered.planners[0]!.createGlobalPlan([outOfBounds]), /Failed to validate global plan: key w has out of bounds chunk: tensor-size \[4\] chunk \{offsets \[2\], sizes \[4\]\}/);
});

t.test('DefaultSavePlanner.resolveData', async (t) => {
  const w = new Tensor('float32', [2]);
  const shard0 = new Tensor('float32', [2]);
  const shard1 = new Tensor('float32', [2]);
  const raw = new Uint8Array([9, 8, 7]);
  const planner = new DefaultSavePlanner();
  planner.setUpPlanner({ m: { w, st: new ShardedTensor([4], 'float32', [{ offsets: [0], tensor: shard0 }, { offsets: [2], tensor: shard1 }]) }, raw, cfg: { name: 'é', n: [1, 2] } }, undefined, true);
  const plan = planner.createLocalPlan();
  const [global] = planner.createGlobalPlan([plan]);
  const byFqn = (fqn: string, offset?: number[]) => global[0]!.items.find((i) => i.index.fqn === fqn && (offset === undefined || i.index.offset![0] === offset[0]))!;
  t.equal(planner.resolveData(byFqn('m.w')), w, 'the tensor itself, no copy');
  t.equal(planner.resolveData(byFqn('m.st', [2])), shard1, 'the local shard at the offset');
  t.equal(planner.resolveData(byFqn('raw')), raw, 'raw bytes as-is');
  t.equal(new TextDecoder().decode(planner.resolveData(byFqn('cfg.name')) as Uint8Array), '"é"');
  t.same(JSON.parse(new TextDecoder().decode(planner.resolveData(byFqn('cfg.n')) as Uint8Array)), [1, 2]);
  t.throws(() => planner.resolveData({ index: metadataIndex('nope'), type: WriteItemType.BYTE_IO }), /Could not find FQN: 'nope'/);
  t.throws(() => planner.resolveData({ index: metadataIndex('m.st', [1]), type: WriteItemType.SHARD }), /Could not find shard at '\[1\]' for FQN: 'm.st'/);
  t.throws(() => planner.resolveData({ index: metadataIndex('m.w', [1]), type: WriteItemType.TENSOR }), /FQN: 'm.w' is not a ShardedTensor, can't find by offset: '\[1\]'/);
  t.throws(() => planner.resolveData({ index: metadataIndex('raw'), type: WriteItemType.BYTE_IO, bytesIoData: { encoding: 'json' } }), /expects a JSON value/);
  t.throws(() => planner.resolveData({ index: metadataIndex('cfg.n'), type: WriteItemType.TENSOR }), /not a tensor/);
  t.throws(() => new DefaultSavePlanner().createLocalPlan(), { code: 'PLANNER_NOT_SET_UP' });
});

t.test('findStateDictObject: index hint first, offset identity decides', async (t) => {
  const s0 = new Tensor('float32', [2]);
  const s1 = new Tensor('float32', [2]);
  const sd: FlatStateDict = { st: new ShardedTensor([4], 'float32', [{ offsets: [0], tensor: s0 }, { offsets: [2], tensor: s1 }]), v: 1 };
  t.equal(findStateDictObject(sd, metadataIndex('st', [2], 1)), s1);
  t.equal(findStateDictObject(sd, metadataIndex('st', [2], 0)), s1, 'a wrong hint falls back to the offset');
  t.equal(findStateDictObject(sd, metadataIndex('st', [0], 7)), s0, 'an out-of-range hint falls back');
  t.throws(() => findStateDictObject(sd, metadataIndex('st')), /Cannot lookup st since its a ShardedTensor and no offset was provided/);
  t.equal(findStateDictObject(sd, metadataIndex('v')), 1);
  t.throws(() => findStateDictObject(sd, metadataIndex('v', [0])), /is not a ShardedTensor/);
});

function saveToMetadata(sd: StateDict): Metadata {
  const planner = new DefaultSavePlanner();
  planner.setUpPlanner(sd, undefined, true);
  return planner.createGlobalPlan([planner.createLocalPlan()])[1];
}

t.test('DefaultLoadPlanner: strict vs partial load (TestLoadPlanner.test_strict)', async (t) => {
  const metadata = saveToMetadata({ module: { weight: new Tensor('float32', [2, 2]), bias: new Tensor('float32', [2]) } });
  const target = (): StateDict => ({ module: { weight: new Tensor('float32', [2, 2]), bias: new Tensor('float32', [2]), extra_param: new Tensor('float32', [2, 2]) } });
  const partial = new DefaultLoadPlanner({ allowPartialLoad: true });
  partial.setUpPlanner(target(), metadata, true);
  t.same(partial.createLocalPlan().items.map((i) => i.destIndex.fqn), ['module.weight', 'module.bias']);
  const strict = new DefaultLoadPlanner();
  strict.setUpPlanner(target(), metadata, true);
  t.throws(() => strict.createLocalPlan(), { code: 'MISSING_KEY', message: 'Missing key in checkpoint state_dict: module.extra_param.' });
  t.throws(() => createDefaultLocalLoadPlan({ x: 1 }, metadata), /Missing key in checkpoint state_dict: x\./);
  t.same(createDefaultLocalLoadPlan({ x: 1 }, metadata, false).items, []);
  const noMetadata = new DefaultLoadPlanner();
  noMetadata.setUpPlanner({}, undefined, true);
  t.throws(() => noMetadata.createLocalPlan(), { code: 'PLANNER_NOT_SET_UP' });
});

t.test('DefaultLoadPlanner: size, dtype and kind mismatches (test_load_different_sizes_throws)', async (t) => {
  const metadata = saveToMetadata({ w: new Tensor('float32', [2, 2]), st: new ShardedTensor([4], 'float32', [{ offsets: [0], tensor: new Tensor('float32', [4]) }]), b: new Uint8Array(2), j: { k: 1 } });
  const plan = (sd: FlatStateDict) => () => createDefaultLocalLoadPlan(sd, metadata);
  t.throws(plan({ w: new Tensor('float32', [3, 2]) }), { code: 'SIZE_MISMATCH', message: 'Size mismatch between saved [2, 2] and current: [3, 2] for w' });
  t.throws(plan({ w: new Tensor('float32', [4]) }), /Size mismatch between saved \[2, 2\] and current: \[4\] for w/);
  t.throws(plan({ st: new ShardedTensor([5], 'float32', []) }), /Size mismatch between saved \[4\] and current: \[5\] for st/);
  t.throws(plan({ w: new Tensor('float64', [2, 2]) }), { code: 'DTYPE_MISMATCH', message: 'Dtype mismatch between saved float32 and current: float64 for w' });
  t.throws(plan({ w: 5 }), { code: 'TYPE_MISMATCH', message: /Invalid checkpoint metadata for w, expected BytesStorageMetadata but found TensorStorageMetadata/ });
  t.throws(plan({ w: new Uint8Array(16) }), { code: 'TYPE_MISMATCH' });
  t.throws(plan({ b: new Tensor('uint8', [2]) }), { code: 'TYPE_MISMATCH', message: /Cannot load "b": the checkpoint holds bytes/ });
  t.throws(plan({ 'j.k': new Tensor('float32', [1]) }), { code: 'TYPE_MISMATCH', message: /holds a JSON value/ });
  t.equal(createDefaultLocalLoadPlan({ b: 'anything', 'j.k': null }, metadata).items.length, 2, 'any non-tensor placeholder loads a bytes item');
});

t.test('DefaultLoadPlanner: bytes and JSON are assigned into the nested dict, tensors resolve in place', async (t) => {
  const saved = { model: { w: new Tensor('float32', [2]), layers: [{ n: 3 }, { n: 4 }] }, blob: new Uint8Array([1, 2]), sched: { lrs: [0.5, 0.25] } };
  const metadata = saveToMetadata(saved);
  const w = new Tensor('float32', [2]);
  const target: StateDict = { model: { w, layers: [{ n: 0 }, { n: 0 }] }, blob: null, sched: { lrs: [] } };
  const planner = new DefaultLoadPlanner();
  planner.setUpPlanner(target, metadata, false);
  const plan = planner.createLocalPlan();
  const utf8 = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
  for (const item of plan.items) {
    if (item.type === LoadItemType.TENSOR) {
      const region = planner.resolveTensor(item);
      t.equal(region.tensor, w, 'the caller tensor itself');
      t.same(region.offsets, [0]);
      t.same(region.lengths, [2]);
      planner.commitTensor(item, region);
    } else if (item.destIndex.fqn === 'blob') {
      planner.loadBytes(item, Buffer.from([1, 2]));
    } else if (item.destIndex.fqn === 'sched.lrs') {
      planner.loadBytes(item, utf8([0.5, 0.25]));
    } else {
      planner.loadBytes(item, utf8(item.destIndex.fqn === 'model.layers.0.n' ? 3 : 4));
    }
  }
  t.equal((target.model as StateDict).w, w, 'tensor object not replaced');
  t.same((target.model as StateDict).layers, [{ n: 3 }, { n: 4 }]);
  t.same(target.sched, { lrs: [0.5, 0.25] });
  t.ok(target.blob instanceof Uint8Array && !Buffer.isBuffer(target.blob), 'raw bytes come back as a plain Uint8Array');
  t.same([...(target.blob as Uint8Array)], [1, 2]);

  const bad = plan.items.find((i) => i.destIndex.fqn === 'sched.lrs')!;
  t.throws(() => planner.loadBytes(bad, new Uint8Array([0xff, 0xfe])), { code: 'CORRUPT_ITEM' });
  t.throws(() => planner.loadBytes(bad, utf8('x').subarray(0, 2)), { code: 'CORRUPT_ITEM' });
  const wItem = plan.items.find((i) => i.destIndex.fqn === 'model.w')!;
  t.throws(() => planner.loadBytes(wItem, new Uint8Array(1)), { code: 'TYPE_MISMATCH' });
  t.throws(() => planner.resolveTensor({ ...wItem, destOffsets: [1], lengths: [2] }), { code: 'ITEM_OUT_OF_BOUNDS' });
  t.throws(() => planner.resolveTensor({ ...wItem, destOffsets: [0, 0], lengths: [2, 1] }), { code: 'ITEM_OUT_OF_BOUNDS' });
});

t.test('planners without flattening use top-level keys', async (t) => {
  const save = new DefaultSavePlanner({ flattenStateDict: false });
  save.setUpPlanner({ cfg: { a: [1, 2] }, w: new Tensor('int32', [1]) }, undefined, true);
  const [global, metadata] = save.createGlobalPlan([save.createLocalPlan()]);
  t.equal(metadata.plannerData, undefined);
  t.same(Object.keys(metadata.stateDictMetadata), ['cfg', 'w']);
  t.same(JSON.parse(new TextDecoder().decode(save.resolveData(global[0]!.items[0]!) as Uint8Array)), { a: [1, 2] });
  t.throws(() => new DefaultSavePlanner({ flattenStateDict: false }).setUpPlanner({ m: { w: new Tensor('int32', [1]) } }, undefined, true), /"m".*Tensor/);

  const target: StateDict = { cfg: null, w: new Tensor('int32', [1]) };
  const load = new DefaultLoadPlanner({ flattenStateDict: false });
  load.setUpPlanner(target, metadata, true);
  const item = load.createLocalPlan().items.find((i) => i.type === LoadItemType.BYTE_IO)!;
  load.loadBytes(item, new TextEncoder().encode('{"a":[3]}'));
  t.same(target.cfg, { a: [3] });
});
