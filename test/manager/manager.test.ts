/** CheckpointManager in one process on a real Redis: steps, metrics, retention after save, load, delete, gc, pins, ids it does not own. */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointManager } from '../../src/manager/manager.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed, incomplete, type Expectation } from '../helpers/invariants.js';
import { seededTensor } from '../fixtures/incremental-data.js';

const { redis, catalog } = await serverWithCatalog();

const sd = (v: number, n = 3000) => ({ w: new Tensor('uint8', [n], new Uint8Array(n).fill(v % 256)), step: v });
const blank = () => ({ w: new Tensor('uint8', [3000]), step: 0 });

t.test('keepLast 2 + keepBest 1: save loop, queries, load, delete; other runs and foreign ids untouched', async (t) => {
  await redis.flushdb();
  const manager = new CheckpointManager({ redis, run: 'r1', retention: { keepLast: 2, keepBest: { n: 1, metric: 'loss', mode: 'min' } } });
  // Not the manager's: another run, and an id under the run prefix saved without a step.
  await save(sd(7), { checkpointId: 'r2/step-1', storageWriter: new RedisStorageWriter({ redis }) });
  await save(sd(8), { checkpointId: 'r1/step-999', storageWriter: new RedisStorageWriter({ redis }) });
  const losses = [0.9, 0.2, 0.5, 0.6, 0.7];
  const results = [];
  for (const [i, loss] of losses.entries()) results.push(await manager.save((i + 1) * 10, sd(i + 1), { metrics: { loss } }));
  t.same(results.map((r) => r.deleted), [[], [], ['r1/step-10'], [], ['r1/step-30']], 'each save deletes what no rule keeps any more');
  t.same(await manager.steps(), [20, 40, 50], 'latest two and the best (20, loss 0.2)');
  t.equal(await manager.latestStep(), 50);
  t.equal(await manager.bestStep(), 20);
  t.same(await manager.metrics(40), { loss: 0.6 });
  t.equal(await manager.metrics(10), null);
  t.match((await catalog.list({ prefix: 'r1/' })).items.find((i) => i.id === 'r1/step-40'), { step: 40, metrics: { loss: 0.6 } });

  const into = blank();
  t.equal(await manager.load(into), 50, 'load picks the latest step');
  t.equal(into.step, 5);
  t.equal(await manager.load(into, { step: 20 }), 20);
  t.equal(into.step, 2);
  t.equal(await new CheckpointManager({ redis, run: 'empty' }).load(blank()), null, 'a run with no step loads nothing');

  t.equal(await manager.delete(40), true);
  t.equal(await manager.delete(40), false);
  t.same(await manager.gc({ dryRun: true }), { deleted: [], kept: ['r1/step-20', 'r1/step-50'] });
  await manager.close();
  await assertStoreAgrees(t, {
    redis,
    expect: { 'r1/step-20': committed(sd(2)), 'r1/step-50': committed(sd(5)), 'r2/step-1': committed(sd(7)), 'r1/step-999': committed(sd(8)), 'r1/step-10': { state: 'absent' }, 'r1/step-40': { state: 'absent' } },
  });
});

t.test('gc collects old incomplete saves of the run only; retention skips a pinned step and retries it next save', async (t) => {
  await redis.flushdb();
  const manager = new CheckpointManager({ redis, run: 'g', retention: { keepLast: 1 }, gcIncompleteAfterMs: 0, writerOptions: { recycleTtlMs: 0 } });
  // Crashed saves: one in this run, one in another run.
  for (const id of ['g/step-5', 'other/step-5']) {
    const store = new CheckpointStore(redis, new KeySpace(), id);
    await store.beginSave(await store.nextToken(), 'crashed', 1, 1, true, 100);
  }
  await new Promise((r) => setTimeout(r, 20));
  const first = await manager.save(1, sd(1));
  t.same(first.deleted, ['g/step-5'], 'the crashed save of this run was collected after the first commit');
  // A load in progress pins step 1 (the reader pins in readMetadata and holds it until the load ends).
  const reader = new RedisStorageReader({ redis, checkpointId: 'g/step-1' });
  await reader.readMetadata();
  t.equal(await redis.zcard('dcp:ckpt:{g/step-1}:pins'), 1, 'the reader holds a pin');
  const second = await manager.save(2, sd(2));
  t.same(second.deleted, [], 'nothing deleted');
  t.same(second.busy, ['g/step-1'], 'the pinned step was skipped');
  await t.rejects(catalog.delete('g/step-1'), { code: 'CHECKPOINT_IN_USE' }, 'a delete refuses it too');
  await reader.endLoad();
  t.equal(await redis.exists('dcp:ckpt:{g/step-1}:pins'), 0, 'the pin went with the load');
  const third = await manager.save(3, sd(3));
  t.same(third.deleted.sort(), ['g/step-1', 'g/step-2'], 'the next save retried it');
  await reader.close();
  await manager.close();
  const expect: Record<string, Expectation> = { 'g/step-3': committed(sd(3)), 'other/step-5': incomplete, 'g/step-5': { state: 'absent' } };
  await assertStoreAgrees(t, { redis, expect });
});

t.test('saves are incremental by default (a step that changed nothing stores nothing); writerOptions.incremental: false turns it off', async (t) => {
  const w = seededTensor(256, 1024, 5); // 1 MiB of distinct bytes
  const piecesBefore = (await redis.keys('dcp:blob:*')).length; // of the steps earlier tests kept
  const on = new CheckpointManager({ redis, run: 'inc-on' });
  await on.save(1, { w });
  await on.save(2, { w });
  const [one, two] = [await catalog.get('inc-on/step-1'), await catalog.get('inc-on/step-2')];
  t.equal(one.storedBytes, one.totalBytes, 'the first step stores its bytes');
  t.equal(two.storedBytes, 0, 'the second, unchanged, stores nothing: it references the first');
  const off = new CheckpointManager({ redis, run: 'inc-off', writerOptions: { incremental: false } });
  await off.save(1, { w });
  await off.save(2, { w });
  const offTwo = await catalog.get('inc-off/step-2');
  t.equal(offTwo.storedBytes, offTwo.totalBytes, 'incremental: false stores every step whole');
  await assertStoreAgrees(t, { redis, expect: { 'inc-on/step-1': committed({ w }), 'inc-on/step-2': committed({ w }), 'inc-off/step-1': committed({ w }), 'inc-off/step-2': committed({ w }) }, exhaustive: false });
  for (const m of [on, off]) {
    for (const step of await m.steps()) await m.delete(step);
    await m.close();
  }
  t.equal((await redis.keys('dcp:blob:*')).length, piecesBefore, 'deleting the steps leaves none of their pieces');
});

t.test('gc after a commit sweeps stray pieces only when one may exist: at the first save and after a failed save', async (t) => {
  const m = new CheckpointManager({ redis, run: 'sweep' });
  const w = seededTensor(64, 1024, 6);
  const stray = `dcp:blob:${'ab'.repeat(16)}-4`;
  await redis.set(stray, 'late');
  await m.save(1, { w });
  t.equal(await redis.exists(stray), 0, 'the first save of a manager sweeps');
  await redis.set(stray, 'late');
  await m.save(2, { w });
  t.equal(await redis.exists(stray), 1, 'a commit after commits does not scan the piece keys');
  await t.rejects(m.save(3, { w, bad: (() => 1) as unknown as number }), 'a save fails');
  await m.save(4, { w });
  t.equal(await redis.exists(stray), 0, 'the commit after a failed save sweeps (its ranks may have stored pieces after their release)');
  for (const step of await m.steps()) await m.delete(step);
  await m.close();
});
