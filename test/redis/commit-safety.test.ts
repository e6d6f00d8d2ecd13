/**
 * A committed checkpoint must survive every failure that happens after its commit:
 * aborting ranks may only remove data of a save that can no longer commit.
 */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import type { ProcessGroup } from '../../src/core/process-group.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed, damaged } from '../helpers/invariants.js';

const { redis, catalog } = await serverWithCatalog();

const filled = (n: number, v: number) => new Tensor('int32', [n], new Int32Array(n).fill(v));

/** A group whose last broadcast (the metadata after finish) fails on this rank. */
function failingLastBroadcast(group: ProcessGroup): ProcessGroup {
  let broadcasts = 0;
  return {
    rank: group.rank,
    worldSize: group.worldSize,
    gather: (v, dst) => group.gather(v, dst),
    scatter: (v, src) => group.scatter(v, src),
    allGather: (v) => group.allGather(v),
    barrier: () => group.barrier(),
    broadcast: async (v, src) => {
      const out = await group.broadcast(v, src);
      if (++broadcasts === 1) throw new Error('connection lost after the commit');
      return out;
    },
  };
}

t.test('a follower that fails after the commit does not remove committed data', async (t) => {
  const id = 'safety/after-commit';
  const groups = createLocalGroups(2, { timeoutMs: 5000 });
  const outcomes = await Promise.allSettled(
    groups.map((group, rank) =>
      save({ [`w${rank}`]: filled(5000, rank + 1) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }), processGroup: rank === 1 ? failingLastBroadcast(group) : group }),
    ),
  );
  t.equal(outcomes[0]!.status, 'fulfilled', 'the coordinator committed');
  t.equal(outcomes[1]!.status, 'rejected', 'the follower saw its own failure');
  t.equal((await catalog.get(id)).state, 'committed');
  t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] }, 'every data key still there');
  const sd = { w0: filled(5000, 0), w1: filled(5000, 0) };
  await load(sd, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  t.equal(sd.w0.data[4999], 1);
  t.equal(sd.w1.data[4999], 2);
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w0: filled(5000, 1), w1: filled(5000, 2) }) }, exhaustive: false });
});

t.test('a coordinator whose finish fails after the commit keeps the commit', async (t) => {
  const id = 'safety/finish-after-commit';
  class LateFailure extends RedisStorageWriter {
    override async finish(...args: Parameters<RedisStorageWriter['finish']>): Promise<void> {
      await super.finish(...args);
      throw new Error('reply lost');
    }
  }
  const groups = createLocalGroups(2, { timeoutMs: 5000 });
  const outcomes = await Promise.allSettled(
    groups.map((group, rank) => save({ [`w${rank}`]: filled(100, 7) }, { checkpointId: id, storageWriter: rank === 0 ? new LateFailure({ redis }) : new RedisStorageWriter({ redis }), processGroup: group })),
  );
  t.ok(outcomes.every((o) => o.status === 'rejected'), 'every rank reports the failure');
  t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] }, 'the committed data is intact');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w0: filled(100, 7), w1: filled(100, 7) }) }, exhaustive: false });
});

t.test('an aborted save can no longer commit; ranks of a superseded save cannot record keys', async (t) => {
  const store = new CheckpointStore(redis, new KeySpace(), 'safety/unit');
  const token = await store.nextToken();
  await store.beginSave(token, 'saveA', 10_000, 2, true);
  await store.recordDataKeys('saveA', ['dcp:data:safety/unit:saveA:0:0']);
  t.equal(await store.abortSave('saveA'), 'aborted');
  await t.rejects(store.commit(token, 'saveA', '{}', { worldSize: 2, totalBytes: 0, itemCount: 0 }), { code: 'FENCED' });
  await t.rejects(store.recordDataKeys('saveA', ['dcp:data:safety/unit:saveA:1:0']), { code: 'FENCED' }, 'a rank of an aborted save cannot start writing');
  const next = await store.nextToken();
  await store.beginSave(next, 'saveB', 10_000, 1, true);
  await store.commit(next, 'saveB', '{}', { worldSize: 1, totalBytes: 0, itemCount: 0 });
  t.equal(await store.abortSave('saveB'), 'committed', 'a committed save is never aborted');
  t.equal((await store.state())!.status, 'committed');
  t.equal(await redis.zscore('dcp:catalog', 'safety/unit') !== null, true, 'the commit (re)adds the catalog entry');
  // The scripts were driven directly with a placeholder "{}" for metadata: committed, but
  // nothing a reader can use. The aborted save's recorded key was never written: no stray data.
  await assertStoreAgrees(t, { redis, expect: { 'safety/unit': damaged({}, 'metadata_invalid') }, exhaustive: false });
});

t.test('a delete whose lock lapsed cannot hide or damage the save that took over', async (t) => {
  const id = 'safety/delete-lapsed';
  await save({ w: filled(1000, 1) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const store = new CheckpointStore(redis, new KeySpace(), id);
  const deleter = await store.nextToken();
  const doomed = await store.beginDelete(deleter); // ...then the deleter stalls past its lock TTL
  t.equal((await catalog.get(id)).state, 'incomplete', 'no longer committed once the delete began');
  await save({ w: filled(1000, 2) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  t.equal((await catalog.get(id)).state, 'committed', 'the newer save reads as committed');
  await t.rejects(store.finishDelete(deleter, doomed), { code: 'FENCED' }, 'the stale delete cannot remove the control keys');
  t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] });
  const sd = { w: filled(1000, 0) };
  await load(sd, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  t.equal(sd.w.data[999], 2);
  t.equal((await redis.smembers(`dcp:ckpt:{${id}}:saves`)).length, 1, 'the deleted save was garbage-collected by the commit');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w: filled(1000, 2) }) }, exhaustive: false });
});

t.test('a writer used for a second save without a checkpoint id writes new keys, never over the committed save', async (t) => {
  const id = 'safety/reused-writer';
  const writer = new RedisStorageWriter({ redis, checkpointId: id, overwrite: true });
  const store = new CheckpointStore(redis, new KeySpace('dcp'), id);
  await save({ w: filled(1000, 1) }, { storageWriter: writer });
  const first = (await store.state())!.committedSaveId!;
  const firstKeys = (await redis.keys(`dcp:data:${id}:${first}:*`)).sort();
  t.ok(firstKeys.length > 0, 'the first save wrote data keys');
  const reader = new RedisStorageReader({ redis, checkpointId: id });
  await save({ w: filled(1000, 2) }, { storageWriter: writer });
  const second = (await store.state())!.committedSaveId!;
  t.not(second, first, 'the second save has its own save id');
  t.ok((await redis.keys(`dcp:data:${id}:${second}:*`)).length > 0, 'and its own data keys');
  t.same(await redis.keys(`dcp:data:${id}:${first}:*`), [], "the first save's keys were dropped at the commit, not written over");
  const back = { w: new Tensor('int32', [1000]) };
  await load(back, { storageReader: reader });
  t.ok(back.w.data.every((v) => v === 2), 'the second save loads');
  // A writer whose save failed (here after its commit, so abort() ran) is ready for a new save id too.
  const [group] = createLocalGroups(1);
  await t.rejects(save({ w: filled(1000, 3) }, { storageWriter: writer, processGroup: failingLastBroadcast(group!) }));
  const third = (await store.state())!.committedSaveId!;
  t.not(third, second, 'the failed save had its own save id (and its commit stands)');
  await save({ w: filled(1000, 4) }, { storageWriter: writer });
  const fourth = (await store.state())!.committedSaveId!;
  t.not(fourth, third, 'after a failed save, a new save id again');
  await writer.close();
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w: filled(1000, 4) }) }, exhaustive: false });
});

