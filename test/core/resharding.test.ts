/**
 * N→M resharding. The read items are checked against the exact items DCP's
 * algorithm produces (test_planner.py: test_load_with_resharding,
 * test_load_with_world_size_diff_by_one), then every layout is run end to end
 * through the planners: N save planners write chunk bytes, the metadata goes
 * through its JSON encoding, M load planners read them back with copyBoxInto
 * (whole chunks and GETRANGE-style partial fetches), and every element is checked.
 */
import t, { type Test } from 'tap';
import { DefaultLoadPlanner, DefaultSavePlanner } from '../../src/core/default-planner.js';
import type { Metadata, TensorStorageMetadata } from '../../src/core/metadata.js';
import { metadataIndex, metadataIndexKey } from '../../src/core/metadata.js';
import { metadataFromJSON, metadataToJSON } from '../../src/core/metadata-json.js';
import { LoadItemType, type LoadPlan, type ReadItem, type SavePlan } from '../../src/core/planner.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { copyBoxInto, storageByteRange, stridesOf } from '../../src/core/tensor-box.js';
import { elementSize, numelOf, ShardedTensor, Tensor } from '../../src/core/tensor.js';

type Box = { offsets: number[]; sizes: number[] };

/** A float32 tensor holding the box of a global tensor whose element i (row-major) is i + 1. */
function boxTensor(globalShape: number[], box: Box, filled: boolean): Tensor {
  const data = new Float32Array(numelOf(box.sizes));
  if (filled) {
    const gStrides = stridesOf(globalShape);
    const lStrides = stridesOf(box.sizes);
    for (let i = 0; i < data.length; i++) {
      let g = 0;
      for (let d = 0; d < box.sizes.length; d++) g += (Math.floor(i / lStrides[d]!) % box.sizes[d]! + box.offsets[d]!) * gStrides[d]!;
      data[i] = g + 1;
    }
  }
  return new Tensor('float32', box.sizes, data);
}

function sharded(globalShape: number[], boxes: Box[], filled: boolean): ShardedTensor {
  return new ShardedTensor(globalShape, 'float32', boxes.map((b) => ({ offsets: b.offsets, tensor: boxTensor(globalShape, b, filled) })));
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

interface Saved {
  readonly metadata: Metadata;
  readonly blobs: Map<string, Uint8Array>;
}

/** Save from every rank: local plans (as JSON), global plan on rank 0, resolveData per item. */
function saveRanks(stateDicts: StateDict[]): Saved {
  const planners = stateDicts.map(() => new DefaultSavePlanner());
  const local = planners.map((p, r) => {
    p.setUpPlanner(stateDicts[r]!, undefined, r === 0);
    return clone(p.createLocalPlan());
  });
  const [globalPlan, metadata] = planners[0]!.createGlobalPlan(local);
  const blobs = new Map<string, Uint8Array>();
  planners.forEach((p, r) => {
    const plan: SavePlan = p.finishPlan(clone(globalPlan[r]!));
    for (const item of plan.items) {
      const data = p.resolveData(item);
      const key = metadataIndexKey(item.index);
      if (blobs.has(key)) throw new Error(`${key} written twice`);
      blobs.set(key, (data instanceof Tensor ? data.bytes : data).slice());
    }
  });
  return { metadata: metadataFromJSON(metadataToJSON(metadata)), blobs };
}

/** Load into every rank's state dict; returns each rank's plan. */
function loadRanks(stateDicts: StateDict[], saved: Saved, partialFetch: boolean): LoadPlan[] {
  return stateDicts.map((sd, r) => {
    const planner = new DefaultLoadPlanner();
    planner.setUpPlanner(sd, saved.metadata, r === 0);
    const plan = planner.finishPlan(clone(planner.createLocalPlan()));
    for (const item of plan.items) {
      const blob = saved.blobs.get(metadataIndexKey(item.storageIndex));
      if (blob === undefined) throw new Error(`no blob for ${metadataIndexKey(item.storageIndex)}`);
      if (item.type === LoadItemType.BYTE_IO) {
        planner.loadBytes(item, blob);
        continue;
      }
      const md = saved.metadata.stateDictMetadata[item.storageIndex.fqn] as TensorStorageMetadata;
      const chunk = md.chunks[item.storageIndex.index!]!;
      const region = planner.resolveTensor(item);
      if (partialFetch) {
        const range = storageByteRange(chunk.sizes, item.storageOffsets, item.lengths, elementSize(md.properties.dtype));
        copyBoxInto(region, blob.subarray(range.start, range.end), chunk.sizes, item.storageOffsets, range.start);
      } else {
        copyBoxInto(region, blob, chunk.sizes, item.storageOffsets);
      }
      planner.commitTensor(item, region);
    }
    return plan;
  });
}

/** Every local element equals the global value at its position. */
function checkValues(t: Test, what: string, globalShape: number[], value: Tensor | ShardedTensor): void {
  const shards = value instanceof ShardedTensor ? value.localShards : [{ offsets: globalShape.map(() => 0), tensor: value }];
  for (const shard of shards) {
    const expected = boxTensor(globalShape, { offsets: [...shard.offsets], sizes: [...shard.tensor.shape] }, true);
    const actual = shard.tensor.data as Float32Array;
    const bad = actual.findIndex((v, i) => v !== expected.data[i]);
    if (bad !== -1) {
      t.fail(`${what}: shard at [${shard.offsets.join(', ')}] differs at element ${bad}: ${actual[bad]} vs ${expected.data[bad]}`);
      return;
    }
  }
  t.pass(`${what}: all values correct`);
}

type ItemRow = [destOffset: number[], destOffsets: number[], storageOffset: number[], storageIdx: number, storageOffsets: number[], lengths: number[]];

function expectItems(fqn: string, destIdx: number, rows: ItemRow[]): ReadItem[] {
  return rows.map(([destOffset, destOffsets, storageOffset, storageIdx, storageOffsets, lengths]) => ({
    type: LoadItemType.TENSOR,
    destIndex: metadataIndex(fqn, destOffset, destIdx),
    destOffsets,
    storageIndex: metadataIndex(fqn, storageOffset, storageIdx),
    storageOffsets,
    lengths,
  }));
}

/** 1-D row split: world ranks, `size` elements, each rank one contiguous shard (DCP's create_sharded_tensor). */
function split1d(size: number, world: number, rank: number, filled: boolean): StateDict {
  const n = size / world;
  return { st: sharded([size], [{ offsets: [rank * n], sizes: [n] }], filled) };
}

function run(t: Test, name: string, saveSds: StateDict[], loadSds: () => StateDict[], globalShape: number[], fqn = 'st'): LoadPlan[] {
  const saved = saveRanks(saveSds);
  let plans: LoadPlan[] = [];
  for (const partialFetch of [false, true]) {
    const targets = loadSds();
    plans = loadRanks(targets, saved, partialFetch);
    targets.forEach((sd, r) => checkValues(t, `${name}, rank ${r}${partialFetch ? ', partial fetch' : ''}`, globalShape, sd[fqn] as Tensor | ShardedTensor));
  }
  return plans;
}

t.test('8 → 4 ranks, 128 elements (test_load_with_resharding, first scenario)', async (t) => {
  const plans = run(t, '8→4', [0, 1, 2, 3, 4, 5, 6, 7].map((r) => split1d(128, 8, r, true)), () => [0, 1, 2, 3].map((r) => split1d(128, 4, r, false)), [128]);
  t.same(plans[1]!.items, expectItems('st', 0, [
    [[32], [0], [32], 2, [0], [16]],
    [[32], [16], [48], 3, [0], [16]],
  ]));
  t.same(plans[3]!.items, expectItems('st', 0, [
    [[96], [0], [96], 6, [0], [16]],
    [[96], [16], [112], 7, [0], [16]],
  ]));
});

t.test('4 → 8 ranks, 128 elements (second scenario)', async (t) => {
  const plans = run(t, '4→8', [0, 1, 2, 3].map((r) => split1d(128, 4, r, true)), () => [0, 1, 2, 3, 4, 5, 6, 7].map((r) => split1d(128, 8, r, false)), [128]);
  t.same(plans[1]!.items, expectItems('st', 0, [[[16], [0], [0], 0, [16], [16]]]));
  t.same(plans.map((p) => p.items.map((i) => [i.storageIndex.index, i.storageOffsets[0]])), [0, 1, 2, 3, 4, 5, 6, 7].map((r) => [[r >> 1, (r & 1) * 16]]));
});

t.test('4 → 3 ranks, 120 elements (test_load_with_world_size_diff_by_one)', async (t) => {
  const plans = run(t, '4→3', [0, 1, 2, 3].map((r) => split1d(120, 4, r, true)), () => [0, 1, 2].map((r) => split1d(120, 3, r, false)), [120]);
  t.same(plans[0]!.items, expectItems('st', 0, [
    [[0], [0], [0], 0, [0], [30]],
    [[0], [30], [30], 1, [0], [10]],
  ]));
  t.same(plans[1]!.items, expectItems('st', 0, [
    [[40], [0], [30], 1, [10], [20]],
    [[40], [20], [60], 2, [0], [20]],
  ]));
  t.same(plans[2]!.items, expectItems('st', 0, [
    [[80], [0], [60], 2, [20], [10]],
    [[80], [10], [90], 3, [0], [30]],
  ]));
});

const rows = (shape: number[], starts: number[], rank: number, filled: boolean, fqn = 'w'): StateDict => {
  const end = rank + 1 < starts.length ? starts[rank + 1]! : shape[0]!;
  return { [fqn]: sharded(shape, [{ offsets: [starts[rank]!, 0], sizes: [end - starts[rank]!, shape[1]!] }], filled) };
};
const cols = (shape: number[], width: number, rank: number, filled: boolean): StateDict => ({
  w: sharded(shape, [{ offsets: [0, rank * width], sizes: [shape[0]!, width] }], filled),
});

t.test('2-D row chunks: 4 → 2 ranks', async (t) => {
  const plans = run(t, 'rows 4→2', [0, 1, 2, 3].map((r) => rows([8, 6], [0, 2, 4, 6], r, true)), () => [0, 1].map((r) => rows([8, 6], [0, 4], r, false)), [8, 6], 'w');
  t.same(plans[1]!.items, expectItems('w', 0, [
    [[4, 0], [0, 0], [4, 0], 2, [0, 0], [2, 6]],
    [[4, 0], [2, 0], [6, 0], 3, [0, 0], [2, 6]],
  ]));
});

t.test('2-D row-wise save, column-wise load: 2 → 4 ranks', async (t) => {
  const plans = run(t, 'rows→cols', [0, 1].map((r) => rows([6, 8], [0, 3], r, true)), () => [0, 1, 2, 3].map((r) => cols([6, 8], 2, r, false)), [6, 8], 'w');
  t.same(plans[1]!.items, expectItems('w', 0, [
    [[0, 2], [0, 0], [0, 0], 0, [0, 2], [3, 2]],
    [[0, 2], [3, 0], [3, 0], 1, [0, 2], [3, 2]],
  ]));
});

t.test('2-D uneven rows: 3 ranks (3, 3, 1 rows) → 2 ranks (4, 3 rows)', async (t) => {
  const plans = run(t, 'uneven', [0, 1, 2].map((r) => rows([7, 5], [0, 3, 6], r, true)), () => [0, 1].map((r) => rows([7, 5], [0, 4], r, false)), [7, 5], 'w');
  t.same(plans[0]!.items, expectItems('w', 0, [
    [[0, 0], [0, 0], [0, 0], 0, [0, 0], [3, 5]],
    [[0, 0], [3, 0], [3, 0], 1, [0, 0], [1, 5]],
  ]));
  t.same(plans[1]!.items, expectItems('w', 0, [
    [[4, 0], [0, 0], [3, 0], 1, [1, 0], [2, 5]],
    [[4, 0], [2, 0], [6, 0], 2, [0, 0], [1, 5]],
  ]));
});

t.test('2-D interleaved chunks: each rank holds every other row block; loaded as 2x2 blocks', async (t) => {
  // 8 x 6, row blocks of 2 rows; rank r of 2 holds blocks r and r + 2.
  const interleaved = (r: number): StateDict => ({
    w: sharded([8, 6], [r, r + 2].map((b) => ({ offsets: [b * 2, 0], sizes: [2, 6] })), true),
  });
  const blocks = (r: number): StateDict => ({
    w: sharded([8, 6], [{ offsets: [Math.floor(r / 2) * 4, (r % 2) * 3], sizes: [4, 3] }], false),
  });
  const plans = run(t, 'interleaved→blocks', [0, 1].map(interleaved), () => [0, 1, 2, 3].map(blocks), [8, 6], 'w');
  // Saved chunk order: rank 0's blocks (rows 0, 4), then rank 1's (rows 2, 6).
  t.same(plans[3]!.items, expectItems('w', 0, [
    [[4, 3], [0, 0], [4, 0], 1, [0, 3], [2, 3]],
    [[4, 3], [2, 0], [6, 0], 3, [0, 3], [2, 3]],
  ]));
  // And back: blocks saved by 4 ranks, loaded interleaved by 2 (two local shards each).
  const back = run(t, 'blocks→interleaved', [0, 1, 2, 3].map((r) => ({ w: sharded([8, 6], [{ offsets: [Math.floor(r / 2) * 4, (r % 2) * 3], sizes: [4, 3] }], true) })), () => [0, 1].map((r) => ({ w: sharded([8, 6], [r, r + 2].map((b) => ({ offsets: [b * 2, 0], sizes: [2, 6] })), false) })), [8, 6], 'w');
  t.same(back[1]!.items.map((i) => [i.destIndex.index, i.storageIndex.index, i.destOffsets, i.storageOffsets, i.lengths]), [
    [0, 0, [0, 0], [2, 0], [2, 3]],
    [0, 1, [0, 3], [2, 0], [2, 3]],
    [1, 2, [0, 0], [2, 0], [2, 3]],
    [1, 3, [0, 3], [2, 0], [2, 3]],
  ]);
});

t.test('sharded ↔ plain', async (t) => {
  const shape = [6, 4];
  const plainFilled = (): StateDict => ({ w: boxTensor(shape, { offsets: [0, 0], sizes: shape }, true) });
  const plainEmpty = (): StateDict => ({ w: boxTensor(shape, { offsets: [0, 0], sizes: shape }, false) });
  const toPlain = run(t, 'sharded(3)→plain(2 replicas)', [0, 1, 2].map((r) => rows(shape, [0, 2, 4], r, true)), () => [plainEmpty(), plainEmpty()], shape, 'w');
  t.same(toPlain[0]!.items, toPlain[1]!.items, 'each replica reads every chunk');
  t.same(toPlain[0]!.items, expectItems('w', 0, [
    [[0, 0], [0, 0], [0, 0], 0, [0, 0], [2, 4]],
    [[0, 0], [2, 0], [2, 0], 1, [0, 0], [2, 4]],
    [[0, 0], [4, 0], [4, 0], 2, [0, 0], [2, 4]],
  ]));
  const saved = saveRanks([plainFilled(), plainFilled()]);
  t.equal(saved.blobs.size, 1, 'a replicated plain tensor is written once');
  const toSharded = run(t, 'plain(2 replicas)→sharded(3 cols)', [plainFilled(), plainFilled()], () => [0, 1].map((r) => cols(shape, 2, r, false)), shape, 'w');
  t.same(toSharded[1]!.items, expectItems('w', 0, [[[0, 2], [0, 0], [0, 0], 0, [0, 2], [6, 2]]]));
});

/** A seeded generator (mulberry32), so random layouts are reproducible. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (((x ^ (x >>> 14)) >>> 0) % n);
  };
}

/** Splits `shape` into a grid of boxes with random cut points (some boxes may be empty). */
function randomGrid(shape: number[], rand: (n: number) => number): Box[] {
  const cuts = shape.map((s) => {
    const points = new Set([0, s]);
    const extra = rand(3);
    for (let i = 0; i < extra; i++) points.add(rand(s + 1));
    return [...points].sort((a, b) => a - b);
  });
  let boxes: Box[] = [{ offsets: [], sizes: [] }];
  cuts.forEach((c) => {
    const next: Box[] = [];
    for (const b of boxes) for (let i = 0; i + 1 < c.length; i++) next.push({ offsets: [...b.offsets, c[i]!], sizes: [...b.sizes, c[i + 1]! - c[i]!] });
    boxes = next;
  });
  return boxes;
}

function distribute(boxes: Box[], world: number, rand: (n: number) => number): Box[][] {
  const perRank: Box[][] = Array.from({ length: world }, () => []);
  for (const b of boxes) perRank[rand(world)]!.push(b);
  return perRank;
}

t.test('random N-D block layouts round trip (seeded)', async (t) => {
  const rand = rng(20261128);
  for (let trial = 0; trial < 40; trial++) {
    const ndim = 1 + rand(3);
    const shape = Array.from({ length: ndim }, () => 1 + rand(7));
    const saveBoxes = distribute(randomGrid(shape, rand), 1 + rand(4), rand);
    const loadBoxes = distribute(randomGrid(shape, rand), 1 + rand(4), rand);
    run(t, `trial ${trial} [${shape.join('x')}]`, saveBoxes.map((b) => ({ w: sharded(shape, b, true) })), () => loadBoxes.map((b) => ({ w: sharded(shape, b, false) })), shape, 'w');
  }
});

t.test('scalars, empty tensors and bytes travel with tensors', async (t) => {
  const saved = saveRanks([
    { s: new Tensor('float64', [], Float64Array.from([2.5])), e: new Tensor('int32', [0, 3]), m: { cfg: { lr: 0.1 }, blob: new Uint8Array([4, 5]) } },
  ]);
  const target: StateDict = { s: new Tensor('float64', []), e: new Tensor('int32', [0, 3]), m: { cfg: { lr: 0 }, blob: null } };
  const [plan] = loadRanks([target], saved, true);
  t.same((target.s as Tensor).data, Float64Array.from([2.5]));
  t.same(target.m, { cfg: { lr: 0.1 }, blob: new Uint8Array([4, 5]) });
  t.notOk(plan!.items.some((i) => i.destIndex.fqn === 'e'), 'an empty tensor needs no reads');
});

/** DCP's all-pairs loop, written out independently, as the reference for the indexed path. */
function naiveReadItems(fqn: string, saved: Box[], local: Box[]): ReadItem[] {
  const items: ReadItem[] = [];
  local.forEach((l, idx) => {
    saved.forEach((s, sidx) => {
      const disjoint = l.offsets.some((o, d) => o >= s.offsets[d]! + s.sizes[d]! || s.offsets[d]! >= o + l.sizes[d]!);
      if (disjoint) return;
      items.push({
        type: LoadItemType.TENSOR,
        destIndex: metadataIndex(fqn, l.offsets, idx),
        destOffsets: l.offsets.map((o, d) => Math.max(0, s.offsets[d]! - o)),
        storageIndex: metadataIndex(fqn, s.offsets, sidx),
        storageOffsets: l.offsets.map((o, d) => Math.max(0, o - s.offsets[d]!)),
        lengths: l.offsets.map((o, d) => Math.min(o + l.sizes[d]!, s.offsets[d]! + s.sizes[d]!) - Math.max(o, s.offsets[d]!)),
      });
    });
  });
  return items;
}

t.test('the indexed overlap search gives DCP\'s items in DCP\'s order', async (t) => {
  const rand = rng(99);
  let indexed = 0;
  for (let trial = 0; trial < 30; trial++) {
    const ndim = 1 + rand(3);
    const shape = Array.from({ length: ndim }, () => 20 + rand(60));
    // Fine grids on both sides, so local × saved exceeds the threshold and the index is used.
    const fine = (): Box[] => {
      let boxes = randomGrid(shape, rand);
      for (let k = 0; k < 3; k++) boxes = boxes.flatMap((b) => randomGrid(b.sizes, rand).map((c) => ({ offsets: c.offsets.map((o, d) => o + b.offsets[d]!), sizes: c.sizes })));
      return boxes;
    };
    const saved = fine();
    const local = fine();
    if (saved.length * local.length > 4096) indexed++;
    const md: TensorStorageMetadata = { type: 'tensor', properties: { dtype: 'float32', layout: 'strided', requiresGrad: false, memoryFormat: 'contiguous_format', pinMemory: false }, size: shape, chunks: saved };
    const { createReadItemsForChunkList } = await import('../../src/core/planner-helpers.js');
    const actual = createReadItemsForChunkList('w', md, local);
    const expected = naiveReadItems('w', saved, local);
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      t.fail(`trial ${trial}: ${saved.length} saved × ${local.length} local chunks differ`);
      return;
    }
  }
  t.pass('30 random fine layouts agree with the all-pairs reference');
  t.ok(indexed >= 10, `${indexed} of them large enough to use the index`);
});

t.test('50k saved chunks × 50k local chunks plan quickly', async (t) => {
  const { createReadItemsForChunkList } = await import('../../src/core/planner-helpers.js');
  const n = 50_000;
  const saved = Array.from({ length: n }, (_, i) => ({ offsets: [i, 0], sizes: [1, 4] }));
  const local = Array.from({ length: n / 2 }, (_, i) => ({ offsets: [i * 2, 0], sizes: [2, 4] }));
  const md: TensorStorageMetadata = { type: 'tensor', properties: { dtype: 'float32', layout: 'strided', requiresGrad: false, memoryFormat: 'contiguous_format', pinMemory: false }, size: [n, 4], chunks: saved };
  const started = performance.now();
  const items = createReadItemsForChunkList('w', md, local);
  const ms = performance.now() - started;
  t.equal(items.length, n);
  t.same(items[3], { type: LoadItemType.TENSOR, destIndex: metadataIndex('w', [2, 0], 1), destOffsets: [1, 0], storageIndex: metadataIndex('w', [3, 0], 3), storageOffsets: [0, 0], lengths: [1, 4] });
  t.ok(ms < 3000, `planned in ${ms.toFixed(0)} ms`);
});
