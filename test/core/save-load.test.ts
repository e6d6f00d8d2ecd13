import t from 'tap';
import { save } from '../../src/core/save.js';
import { load } from '../../src/core/load.js';
import { CheckpointError, codeOfError } from '../../src/core/errors.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { MemoryStorageReader, MemoryStorageWriter, MemoryStore, type FailureInjection, type Step } from '../helpers/memory-storage.js';

const f32 = (n: number, start = 0) => Float32Array.from({ length: n }, (_, i) => start + i);

/** Runs `fn(rank)` as `world` concurrent in-process ranks and settles all of them. */
async function ranks<T>(world: number, fn: (rank: number, group: ReturnType<typeof createLocalGroups>[number]) => Promise<T>) {
  const groups = createLocalGroups(world, { timeoutMs: 5000 });
  return Promise.allSettled(groups.map((g, rank) => fn(rank, g)));
}

/** A 1-D tensor of `total` elements, rank r of `world` holding an even row block. */
function rowSharded(total: number, world: number, rank: number, fill: (i: number) => number): ShardedTensor {
  const per = Math.ceil(total / world);
  const start = Math.min(per * rank, total);
  const len = Math.max(0, Math.min(per, total - start));
  const data = Float32Array.from({ length: len }, (_, i) => fill(start + i));
  return new ShardedTensor([total], 'float32', len > 0 ? [{ offsets: [start], tensor: new Tensor('float32', [len], data) }] : []);
}

t.test('single process round trip of tensors, bytes, JSON and nesting', async (t) => {
  const store = new MemoryStore();
  const sd: StateDict = {
    model: { weight: new Tensor('float32', [2, 3], f32(6)), bias: new Tensor('int64', [3], BigInt64Array.from([1n, -2n, 3n])) },
    optim: { step: 7, lr: 0.25, betas: [0.9, 0.999], states: [new Tensor('float16', [2], Uint16Array.from([1, 2])), { m: new Tensor('bool', [2], Uint8Array.from([1, 0])) }] },
    blob: Uint8Array.from([0, 255, 7]),
    name: 'run-1',
    nothing: null,
  };
  const md = await save(sd, { storageWriter: new MemoryStorageWriter(store) });
  t.same(Object.keys(md.stateDictMetadata).sort(), ['blob', 'model.bias', 'model.weight', 'name', 'nothing', 'optim.betas', 'optim.lr', 'optim.states.0', 'optim.states.1.m', 'optim.step'].sort());

  const weight = new Tensor('float32', [2, 3]);
  const states0 = new Tensor('float16', [2]);
  const dest: StateDict = {
    model: { weight, bias: new Tensor('int64', [3]) },
    optim: { step: 0, lr: 0, betas: [0, 0], states: [states0, { m: new Tensor('bool', [2]) }] },
    blob: new Uint8Array(0),
    name: '',
    nothing: 'x',
  };
  await load(dest, { storageReader: new MemoryStorageReader(store) });
  t.equal((dest.model as StateDict).weight, weight, 'tensors load in place');
  t.same(Array.from(weight.data), [0, 1, 2, 3, 4, 5]);
  t.same(Array.from(((dest.model as StateDict).bias as Tensor<'int64'>).data), [1n, -2n, 3n]);
  t.same(Array.from(states0.data), [1, 2]);
  const optim = dest.optim as StateDict;
  t.equal(optim.step, 7);
  t.equal(optim.lr, 0.25);
  t.same(optim.betas, [0.9, 0.999]);
  t.same(Array.from(((optim.states as StateDict[])[1]!.m as Tensor<'bool'>).data), [1, 0]);
  t.same(Array.from(dest.blob as Uint8Array), [0, 255, 7]);
  t.ok(dest.blob instanceof Uint8Array, 'bytes come back as bytes');
  t.equal(dest.name, 'run-1');
  t.equal(dest.nothing, null);
});

t.test('protocol call order follows the storage contract', async (t) => {
  const store = new MemoryStore();
  const results = await ranks(2, (rank, group) => save({ w: rowSharded(8, 2, rank, (i) => i) }, { storageWriter: new MemoryStorageWriter(store), processGroup: group }));
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled']);
  const order = (rank: number) => store.calls.filter((c) => c.startsWith(`${rank}:`)).map((c) => c.split(':')[1]);
  t.same(order(0), ['setUp', 'prepareLocalPlan', 'prepareGlobalPlan', 'writeData', 'finish']);
  t.same(order(1), ['setUp', 'prepareLocalPlan', 'writeData']);
  t.ok(store.calls.indexOf('0:prepareGlobalPlan') > store.calls.indexOf('1:prepareLocalPlan'), 'global planning waits for every local plan');
  t.ok(store.calls.indexOf('0:finish') > store.calls.indexOf('1:writeData'), 'finish waits for every write');
});

for (const [saveWorld, loadWorld, total] of [
  [8, 4, 128],
  [4, 8, 128],
  [4, 3, 120],
  [3, 1, 10],
  [1, 5, 17],
] as const) {
  t.test(`resharding ${saveWorld} → ${loadWorld} ranks of a ${total}-element tensor`, async (t) => {
    const store = new MemoryStore();
    const saved = await ranks(saveWorld, (rank, group) =>
      save({ w: rowSharded(total, saveWorld, rank, (i) => i * 0.5), step: 3 }, { storageWriter: new MemoryStorageWriter(store), processGroup: group }),
    );
    t.ok(saved.every((r) => r.status === 'fulfilled'), 'every rank saved');
    const dests = Array.from({ length: loadWorld }, (_, rank) => ({ w: rowSharded(total, loadWorld, rank, () => -1), step: 0 }) as StateDict);
    const loaded = await ranks(loadWorld, (rank, group) => load(dests[rank]!, { storageReader: new MemoryStorageReader(store), processGroup: group }));
    t.ok(loaded.every((r) => r.status === 'fulfilled'), 'every rank loaded');
    for (const sd of dests) {
      t.equal(sd.step, 3);
      for (const shard of (sd.w as ShardedTensor).localShards) {
        const start = shard.offsets[0]!;
        t.same(Array.from(shard.tensor.data as Float32Array), Array.from({ length: shard.tensor.numel }, (_, i) => (start + i) * 0.5));
      }
    }
  });
}

t.test('2-D: row-wise save, column-wise load; sharded ↔ plain', async (t) => {
  const rows = 6;
  const cols = 4;
  const value = (r: number, c: number) => r * 100 + c;
  const store = new MemoryStore();
  await ranks(3, (rank, group) => {
    const data = Float64Array.from({ length: 2 * cols }, (_, i) => value(rank * 2 + Math.floor(i / cols), i % cols));
    return save({ m: new ShardedTensor([rows, cols], 'float64', [{ offsets: [rank * 2, 0], tensor: new Tensor('float64', [2, cols], data) }]) }, { storageWriter: new MemoryStorageWriter(store), processGroup: group });
  });
  const colDests = [0, 1].map((rank) => new ShardedTensor([rows, cols], 'float64', [{ offsets: [0, rank * 2], tensor: new Tensor('float64', [rows, 2]) }]));
  const res = await ranks(2, (rank, group) => load({ m: colDests[rank]! }, { storageReader: new MemoryStorageReader(store), processGroup: group }));
  t.ok(res.every((r) => r.status === 'fulfilled'));
  for (const [rank, st] of colDests.entries()) {
    const got = Array.from(st.localShards[0]!.tensor.data as Float64Array);
    t.same(got, Array.from({ length: rows * 2 }, (_, i) => value(Math.floor(i / 2), rank * 2 + (i % 2))));
  }
  const plain = new Tensor('float64', [rows, cols]);
  await load({ m: plain }, { storageReader: new MemoryStorageReader(store) });
  t.same(Array.from(plain.data as Float64Array), Array.from({ length: rows * cols }, (_, i) => value(Math.floor(i / cols), i % cols)));

  const store2 = new MemoryStore();
  await save({ m: plain }, { storageWriter: new MemoryStorageWriter(store2) });
  const blocks = [0, 1, 2, 3].map((rank) => new ShardedTensor([rows, cols], 'float64', [{ offsets: [Math.floor(rank / 2) * 3, (rank % 2) * 2], tensor: new Tensor('float64', [3, 2]) }]));
  await ranks(4, (rank, group) => load({ m: blocks[rank]! }, { storageReader: new MemoryStorageReader(store2), processGroup: group }));
  t.same(Array.from(blocks[3]!.localShards[0]!.tensor.data as Float64Array), [value(3, 2), value(3, 3), value(4, 2), value(4, 3), value(5, 2), value(5, 3)]);
});

t.test('replicated values are written once (dedup across ranks)', async (t) => {
  const store = new MemoryStore();
  await ranks(3, (_rank, group) => save({ shared: new Tensor('float32', [4], f32(4)), meta: { epoch: 2 } }, { storageWriter: new MemoryStorageWriter(store), processGroup: group }));
  t.equal(store.blobs.size, 2, 'one blob per replicated item');
});

t.test('strict and partial loads; size mismatch', async (t) => {
  const store = new MemoryStore();
  await save({ a: new Tensor('float32', [3], f32(3)) }, { storageWriter: new MemoryStorageWriter(store) });
  const strict = await load({ a: new Tensor('float32', [3]), extra: new Tensor('float32', [1]) }, { storageReader: new MemoryStorageReader(store) }).catch((e: unknown) => e);
  t.ok(strict instanceof CheckpointError && strict.step === 'plan' && /Missing key in checkpoint state_dict: extra/.test(strict.failures.get(0)!.message), 'strict load names the missing key');
  const a = new Tensor('float32', [3]);
  await load({ a, extra: new Tensor('float32', [1]) }, { storageReader: new MemoryStorageReader(store), allowPartialLoad: true });
  t.same(Array.from(a.data), [0, 1, 2]);
  await t.rejects(load({ a: new Tensor('float32', [4]) }, { storageReader: new MemoryStorageReader(store) }), /Size mismatch/);
});

const saveSteps: Array<[Step, string, number]> = [
  ['setUp', 'plan', 1],
  ['prepareLocalPlan', 'plan', 2],
  ['prepareGlobalPlan', 'plan', 0],
  ['writeData', 'write', 1],
  ['finish', 'write', 0],
];
for (const [step, protocolStep, rank] of saveSteps) {
  t.test(`save: a failure in ${step} on rank ${rank} rejects on every rank`, async (t) => {
    const store = new MemoryStore();
    const inject: FailureInjection = { rank, step };
    const results = await ranks(3, (r, group) => save({ w: rowSharded(9, 3, r, (i) => i) }, { storageWriter: new MemoryStorageWriter(store, inject), processGroup: group }));
    for (const [r, res] of results.entries()) {
      t.equal(res.status, 'rejected', `rank ${r} rejected`);
      const err = (res as PromiseRejectedResult).reason as CheckpointError;
      t.ok(err instanceof CheckpointError, 'a CheckpointError');
      t.equal(err.step, protocolStep);
      t.same([...err.failures.keys()], [rank]);
        t.equal(codeOfError(err.failures.get(rank)), 'INJECTED', 'the failing rank\'s own code reaches every rank');
    }
    t.equal(store.metadataJson, undefined, 'nothing committed');
  });
}

for (const [step, rank] of [['readMetadata', 2], ['readData', 1]] as const) {
  t.test(`load: a failure in ${step} on rank ${rank} rejects on every rank`, async (t) => {
    const store = new MemoryStore();
    await save({ w: new Tensor('float32', [6], f32(6)) }, { storageWriter: new MemoryStorageWriter(store) });
    const results = await ranks(3, (r, group) => load({ w: rowSharded(6, 3, r, () => 0) }, { storageReader: new MemoryStorageReader(store, { rank, step }), processGroup: group }));
    for (const res of results) {
      t.equal(res.status, 'rejected');
      const err = (res as PromiseRejectedResult).reason as CheckpointError;
      t.equal(err.step, step === 'readData' ? 'read' : 'plan');
      t.same([...err.failures.keys()], [rank]);
    }
  });
}

t.test('a value that is not a tensor, bytes or JSON fails at plan time', async (t) => {
  const store = new MemoryStore();
  const err = await save({ bad: new Map() as unknown as StateDict }, { storageWriter: new MemoryStorageWriter(store) }).catch((e: unknown) => e);
  t.ok(err instanceof CheckpointError && err.step === 'plan' && /bad/.test(err.message), 'plan-time error names the key');
});

t.test('item identities never collide (a bytes item named like a chunk key)', async (t) => {
  const store = new MemoryStore();
  await ranks(2, (_rank, group) => save({ a: new Tensor('float32', [1], f32(1, 5)), 'a@0': Uint8Array.from([9]), '["a",[0]]': 'x' }, { storageWriter: new MemoryStorageWriter(store), processGroup: group }));
  t.equal(store.blobs.size, 3, 'three distinct items survive dedup');
  const dest: StateDict = { a: new Tensor('float32', [1]), 'a@0': new Uint8Array(0), '["a",[0]]': '' };
  await load(dest, { storageReader: new MemoryStorageReader(store) });
  t.same(Array.from((dest.a as Tensor<'float32'>).data), [5]);
  t.same(Array.from(dest['a@0'] as Uint8Array), [9]);
  t.equal(dest['["a",[0]]'], 'x');
});

t.test('when the coordinator cannot gather, the live ranks get its failure instead of waiting', async (t) => {
  const groups = createLocalGroups(3, { timeoutMs: 60_000 });
  // The coordinator's gather "times out" (after the rendezvous, so the others are not held up).
  const coordinator = groups[0]!;
  const flaky = Object.create(coordinator) as typeof coordinator;
  flaky.gather = async <T>(value: T, dst: number) => {
    await coordinator.gather(value, dst);
    throw Object.assign(new Error('rank 2 never answered'), { code: 'COLLECTIVE_TIMEOUT' });
  };
  const store = new MemoryStore();
  const started = Date.now();
  const results = await Promise.allSettled(
    [flaky, groups[1]!, groups[2]!].map((group, rank) => save({ w: rowSharded(9, 3, rank, (i) => i) }, { storageWriter: new MemoryStorageWriter(store), processGroup: group })),
  );
  t.ok(Date.now() - started < 5000, 'nobody waited for a timeout of their own');
  for (const res of results) {
    const err = (res as PromiseRejectedResult).reason as CheckpointError;
    t.ok(err instanceof CheckpointError);
    t.equal(err.step, 'plan');
    t.same([...err.failures.keys()], [0]);
    t.equal((err.failures.get(0) as Error & { code: string }).code, 'COLLECTIVE_TIMEOUT');
  }
});
