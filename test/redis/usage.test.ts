/** Step and metrics recorded with the commit (CheckpointSummary), and CheckpointCatalog.usage(). */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';

const { redis, catalog } = await serverWithCatalog();

const sd = (n: number, v: number) => ({ w: new Tensor('uint8', [n], new Uint8Array(n).fill(v)) });

t.test('step and metrics are stored with the commit and shown by get and list; a commit without them removes them', async (t) => {
  await save(sd(1000, 1), { checkpointId: 'u1/step-7', storageWriter: new RedisStorageWriter({ redis, step: 7, metrics: { loss: 0.25, acc: 1 } }) });
  const got = await catalog.get('u1/step-7');
  t.equal(got.step, 7);
  t.same(got.metrics, { loss: 0.25, acc: 1 });
  const page = await catalog.list({ prefix: 'u1/' });
  t.match(page.items[0], { id: 'u1/step-7', step: 7, metrics: { loss: 0.25, acc: 1 } });
  await save(sd(1000, 2), { checkpointId: 'u1/step-7', storageWriter: new RedisStorageWriter({ redis }) });
  const again = await catalog.get('u1/step-7');
  t.notOk('step' in again, 'no step after a plain overwrite');
  t.notOk('metrics' in again);
  t.throws(() => new RedisStorageWriter({ redis, step: -1 }), { code: 'DCP_VALUE_ERROR' });
  t.throws(() => new RedisStorageWriter({ redis, metrics: { loss: Number.NaN } }), { code: 'DCP_VALUE_ERROR' });
  await assertStoreAgrees(t, { redis, expect: { 'u1/step-7': committed(sd(1000, 2)) } });
});

t.test('usage: committed, incomplete (planned bytes of a crashed save) and per-run bytes', async (t) => {
  await redis.flushdb();
  await save(sd(5000, 1), { checkpointId: 'a/step-1', storageWriter: new RedisStorageWriter({ redis }) });
  await save(sd(3000, 1), { checkpointId: 'b/step-1', storageWriter: new RedisStorageWriter({ redis }) });
  // A crashed save: begun (planned 4000 bytes), never committed, lease long gone.
  const store = new CheckpointStore(redis, new KeySpace(), 'b/step-2');
  await store.beginSave(await store.nextToken(), 'crashedsave', 1, 1, true, 4000);
  await new Promise((r) => setTimeout(r, 20));
  const usage = await catalog.usage();
  t.ok(usage.redis.usedMemory > 0);
  t.equal(usage.redis.maxMemory, null, 'no maxmemory');
  t.same(usage.committed, { checkpoints: 2, bytes: 8000 });
  t.same(usage.incomplete, { checkpoints: 1, bytes: 4000 });
  t.same(usage.writing, { checkpoints: 0, bytes: 0 });
  t.same(usage.pooled, { segments: 0, bytes: 0 });
  t.equal(usage.logicalBytes, 12000, 'logical: the committed state dicts and the planned bytes of the crashed save');
  t.same(usage.runs, [
    { prefix: 'b/', checkpoints: 2, committedBytes: 3000, incompleteBytes: 4000 },
    { prefix: 'a/', checkpoints: 1, committedBytes: 5000, incompleteBytes: 0 },
  ]);
  t.same((await catalog.usage({ top: 1 })).runs.map((r) => r.prefix), ['b/']);
  await assertStoreAgrees(t, { redis, expect: { 'a/step-1': committed(sd(5000, 1)), 'b/step-1': committed(sd(3000, 1)), 'b/step-2': incomplete } });
});
