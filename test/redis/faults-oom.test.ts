/** Redis answers OOM in the middle of a save: the save fails cleanly, nothing committed is harmed. */
import t from 'tap';
import { CheckpointError } from '../../src/core/errors.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start({ args: ['--maxmemory', '24mb', '--maxmemory-policy', 'noeviction'] });
const redis = server.client();
const catalog = new CheckpointCatalog({ redis });
t.teardown(async () => {
  await catalog.close();
  await server.stop();
});

const sized = (bytes: number, v: number) => new Tensor('uint8', [bytes], new Uint8Array(bytes).fill(v));

// memoryCheck off: this is the OOM in the middle of writing that the pre-flight otherwise prevents (test/manager/preflight.test.ts).
t.test('a save that runs out of memory fails on every rank, leaves no data, and the previous commit stays intact', async (t) => {
  const id = 'oom/ckpt';
  await save({ a: sized(1 << 20, 1), b: sized(1 << 20, 2) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const committedKeys = (await redis.keys(`dcp:data:${id}:*`)).sort();
  const groups = createLocalGroups(2, { timeoutMs: 10_000 });
  const outcomes = await Promise.allSettled(
    groups.map((group, rank) => save({ [`big${rank}`]: sized(16 << 20, 3) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, segmentBytes: 1 << 20, memoryCheck: false }), processGroup: group })),
  );
  t.ok(outcomes.every((o) => o.status === 'rejected'), 'every rank fails');
  const err = (outcomes[0] as PromiseRejectedResult).reason as CheckpointError;
  t.ok(err instanceof CheckpointError);
  t.match(err.message, /OOM|memory/i, 'the cause is named');
  t.same((await redis.keys(`dcp:data:${id}:*`)).sort(), committedKeys, 'the failed save left no data key; the committed ones are all there');
  t.equal((await catalog.get(id)).state, 'committed');
  t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] });
  const sd = { a: sized(1 << 20, 0), b: sized(1 << 20, 0) };
  await load(sd, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  t.ok(sd.a.data.every((x) => x === 1) && sd.b.data.every((x) => x === 2), 'loads bit for bit');
  t.same(await redis.smembers(`dcp:ckpt:{${id}}:saves`), [(await redis.hget(`dcp:ckpt:{${id}}:state`, 'committedSaveId'))!], 'only the committed save is indexed');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ a: sized(1 << 20, 1), b: sized(1 << 20, 2) }) } });
});
