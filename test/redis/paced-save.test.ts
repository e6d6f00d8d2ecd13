/**
 * maxBytesPerSecond of the writer and the reader (Pace in src/redis/bounded.ts): a save's data writes
 * are spread at most at that rate, for plain saves, incremental saves (new pieces only), async saves
 * (the upload worker rebuilds the writer with the option) and the CheckpointManager, and a load's
 * reads likewise; what is stored and loaded is the same, bit for bit. Lower bounds only: a paced
 * save or load cannot finish sooner than its bytes allow.
 */
import t, { type Test } from 'tap';
import { asyncSave, uploadTimesOf } from '../../src/core/async-save.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointManager } from '../../src/manager/manager.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { Pace } from '../../src/redis/bounded.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const MIB = 2 ** 20;
/** 8 MiB/s over 6 MiB of tensors in 1 MiB − 64 B segments or pieces: at least 5 MiB waits for its turn, 0.625 s. */
const RATE = 8 * MIB;
const BYTES = 6 * MIB;
const AT_LEAST_S = (BYTES - MIB) / RATE;

function stateDict(seed: number): StateDict {
  const n = BYTES / 4 / 2;
  return {
    a: new Tensor('int32', [n], Int32Array.from({ length: n }, (_, i) => (i * 7 + seed) | 0)),
    b: new Tensor('int32', [n], Int32Array.from({ length: n }, (_, i) => (i * 13 + seed * 3) | 0)),
    step: seed,
  };
}

function blank(): StateDict {
  const n = BYTES / 4 / 2;
  return { a: new Tensor('int32', [n]), b: new Tensor('int32', [n]), step: -1 };
}

function same(t: Test, got: StateDict, want: StateDict, what: string): void {
  const bytes = (sd: StateDict, k: string) => Buffer.from((sd[k] as Tensor<'int32'>).data.buffer);
  t.ok(bytes(got, 'a').equals(bytes(want, 'a')) && bytes(got, 'b').equals(bytes(want, 'b')) && got.step === want.step, `${what}: loaded bit for bit`);
}

const seconds = (from: number) => (performance.now() - from) / 1000;

t.test('Pace admits the first request at once, then spreads bytes at its rate, in call order; idle time is not saved up', async (t) => {
  const pace = new Pace(1000); // 1,000 bytes/s: 100 bytes = 100 ms
  const t0 = performance.now();
  const admitted: Array<{ i: number; ms: number }> = [];
  await Promise.all([0, 1, 2, 3].map(async (i) => {
    await pace.admit(100);
    admitted.push({ i, ms: performance.now() - t0 });
  }));
  t.same(admitted.map((a) => a.i), [0, 1, 2, 3], 'in call order');
  t.ok(admitted[0]!.ms < 50, `the first at once (${admitted[0]!.ms.toFixed(1)} ms)`);
  admitted.forEach(({ i, ms }) => t.ok(ms >= i * 100, `request ${i} not before ${i * 100} ms (${ms.toFixed(1)})`));

  await new Promise((resolve) => setTimeout(resolve, 400)); // idle well past the schedule
  const t1 = performance.now();
  await pace.admit(100);
  const first = performance.now() - t1;
  await pace.admit(100);
  t.ok(first < 50, 'after idling, the next request starts at once');
  t.ok(performance.now() - t1 >= 100, 'and the one after it still waits its turn: no burst from the idle time');

  const unlimited = new Pace(Infinity);
  let immediate = false;
  setImmediate(() => (immediate = true));
  for (let i = 0; i < 100; i++) await unlimited.admit(1 << 30);
  t.notOk(immediate, 'Infinity admits without waiting for a timer');
});

t.test('maxBytesPerSecond is validated by the writer and the reader', async (t) => {
  for (const bad of [0, -1, Number.NaN, Infinity, '1e6' as unknown as number]) {
    t.throws(() => new RedisStorageWriter({ maxBytesPerSecond: bad }), { code: 'DCP_VALUE_ERROR', message: /^maxBytesPerSecond must be a positive number/ }, `the writer rejects ${String(bad)}`);
    t.throws(() => new RedisStorageReader({ maxBytesPerSecond: bad }), { code: 'DCP_VALUE_ERROR', message: /^maxBytesPerSecond must be a positive number/ }, `the reader rejects ${String(bad)}`);
  }
  t.doesNotThrow(() => new RedisStorageWriter({ maxBytesPerSecond: 0.5 }), 'any positive rate');
  t.doesNotThrow(() => new RedisStorageReader({ maxBytesPerSecond: 0.5 }), 'any positive rate');
});

t.test('paced saves (plain, incremental, async, through the CheckpointManager) and paced loads', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const redis = server.client();
  const reader = () => new RedisStorageReader({ redis });

  let t0 = performance.now();
  await save(stateDict(1), { checkpointId: 'pace/plain', storageWriter: new RedisStorageWriter({ redis, maxBytesPerSecond: RATE }) });
  const plainS = seconds(t0);
  t.ok(plainS >= AT_LEAST_S, `a plain save took ${plainS.toFixed(3)} s ≥ ${AT_LEAST_S} s`);
  let got = blank();
  await load(got, { checkpointId: 'pace/plain', storageReader: reader() });
  same(t, got, stateDict(1), 'plain');
  for (const id of ['pace/plain', 'pace/inc-1']) {
    if (id === 'pace/inc-1') await save(stateDict(2), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, incremental: true }) });
    got = blank();
    t0 = performance.now();
    await load(got, { checkpointId: id, storageReader: new RedisStorageReader({ redis, maxBytesPerSecond: RATE }) });
    const loadS = seconds(t0);
    t.ok(loadS >= AT_LEAST_S, `a paced load of ${id} took ${loadS.toFixed(3)} s ≥ ${AT_LEAST_S} s`);
    same(t, got, id === 'pace/plain' ? stateDict(1) : stateDict(2), `${id}, paced load`);
  }

  // Its pieces are stored already (the loads above): a new save of other bytes writes new pieces.
  t0 = performance.now();
  await save(stateDict(5), { checkpointId: 'pace/inc-1', storageWriter: new RedisStorageWriter({ redis, incremental: true, maxBytesPerSecond: RATE }) });
  const incrementalS = seconds(t0);
  t.ok(incrementalS >= AT_LEAST_S, `an incremental save of new pieces took ${incrementalS.toFixed(3)} s ≥ ${AT_LEAST_S} s`);
  // Nothing new: no piece is written, so there is nothing to pace; what it commits is still whole.
  await save(stateDict(5), { checkpointId: 'pace/inc-2', storageWriter: new RedisStorageWriter({ redis, incremental: true, maxBytesPerSecond: RATE }) });
  const catalog = new CheckpointCatalog({ redis });
  t.teardown(() => catalog.close());
  const [first, unchanged] = await Promise.all(['pace/inc-1', 'pace/inc-2'].map((id) => catalog.get(id)));
  t.ok(first!.storedBytes >= BYTES, `the first incremental save stored every byte (${first!.storedBytes})`);
  t.equal(unchanged!.storedBytes, 0, 'the unchanged one stored none');
  for (const id of ['pace/inc-1', 'pace/inc-2']) {
    got = blank();
    await load(got, { checkpointId: id, storageReader: reader() });
    same(t, got, stateDict(5), id);
  }

  // The upload worker rebuilds the writer from its description: the option goes with it.
  const response = asyncSave(stateDict(3), { checkpointId: 'pace/async', storageWriter: new RedisStorageWriter({ redis: server.url, maxBytesPerSecond: RATE }) });
  await response.committed;
  const times = (await uploadTimesOf(response))!;
  const uploadS = (times.committedAtMs - times.startedAtMs) / 1000;
  t.ok(uploadS >= AT_LEAST_S, `an async upload took ${uploadS.toFixed(3)} s ≥ ${AT_LEAST_S} s`);
  got = blank();
  await load(got, { checkpointId: 'pace/async', storageReader: reader() });
  same(t, got, stateDict(3), 'async');

  const manager = new CheckpointManager({ redis, run: 'pace-run', writerOptions: { maxBytesPerSecond: RATE } });
  t0 = performance.now();
  await manager.save(1, stateDict(4));
  const managerS = seconds(t0);
  t.ok(managerS >= AT_LEAST_S, `a CheckpointManager save (incremental, new pieces) took ${managerS.toFixed(3)} s ≥ ${AT_LEAST_S} s`);
  got = blank();
  t.equal(await manager.load(got), 1);
  same(t, got, stateDict(4), 'manager');
  await manager.close();

  await assertStoreAgrees(t, {
    redis,
    expect: {
      'pace/plain': committed(stateDict(1)),
      'pace/inc-1': committed(stateDict(5)),
      'pace/inc-2': committed(stateDict(5)),
      'pace/async': committed(stateDict(3)),
      'pace-run/step-1': committed(stateDict(4)),
    },
  });
});
