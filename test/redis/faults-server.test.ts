/** The data Redis itself fails: restarted between save and load, or killed in the middle of a save. */
import t from 'tap';
import { Redis } from 'ioredis';
import { CheckpointError } from '../../src/core/errors.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import type { SavePlan, SavePlanner } from '../../src/core/planner.js';
import type { WriteResult } from '../../src/core/storage.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const pattern = (n: number, seed: number) => new Tensor('int32', [n], Int32Array.from({ length: n }, (_, i) => (i * 2654435761 + seed) | 0));

t.test('a committed checkpoint survives a Redis restart with AOF', async (t) => {
  const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const id = 'aof/ckpt';
  const writerClient = new Redis({ port: server.port, disableClientInfo: true });
  await save({ w: pattern(300_000, 1), step: 7 }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis: writerClient, segmentBytes: 256 * 1024 }) });
  writerClient.disconnect();
  await server.stop(true);
  const again = await RedisServer.start({ port: server.port, dir: server.dir, args: ['--appendonly', 'yes'] });
  t.teardown(() => again.stop());
  const redis = new Redis({ port: again.port, disableClientInfo: true });
  t.teardown(() => redis.disconnect());
  const sd = { w: new Tensor('int32', [300_000]), step: 0 };
  await load(sd, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  t.same(Buffer.from(sd.w.data.buffer), Buffer.from(pattern(300_000, 1).data.buffer), 'bit for bit');
  t.equal(sd.step, 7);
  const catalog = new CheckpointCatalog({ redis });
  t.equal((await catalog.list()).items[0]?.state, 'committed');
  await catalog.close();
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w: pattern(300_000, 1), step: 7 }) } });
});

t.test('the data Redis killed mid-save: every rank fails, none hangs; restarted, the save shows as incomplete and deletes cleanly', async (t) => {
  const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  t.teardown(() => server.stop());
  class KillingWriter extends RedisStorageWriter {
    override async writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
      await server.kill();
      return super.writeData(plan, planner);
    }
  }
  const clients = [0, 1].map(() => {
    const c = new Redis({ port: server.port, disableClientInfo: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    c.on('error', () => {});
    return c;
  });
  t.teardown(() => clients.forEach((c) => c.disconnect()));
  const groups = createLocalGroups(2, { timeoutMs: 10_000 });
  const started = Date.now();
  const outcomes = await Promise.allSettled(
    groups.map((group, rank) =>
      save({ [`w${rank}`]: pattern(100_000, rank) }, { checkpointId: 'killed/data', storageWriter: rank === 1 ? new KillingWriter({ redis: clients[rank]!, lockTtlMs: 1500 }) : new RedisStorageWriter({ redis: clients[rank]!, lockTtlMs: 1500 }), processGroup: group }),
    ),
  );
  t.ok(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof CheckpointError), 'every rank reports a CheckpointError');
  t.ok(Date.now() - started < 15_000, `no hang (${Date.now() - started} ms)`);
  // Nothing reported success. Restarted from its AOF, the server holds the begun save: listed, not loadable.
  const again = await RedisServer.start({ port: server.port, dir: server.dir, args: ['--appendonly', 'yes'] });
  t.teardown(() => again.stop());
  const fresh = again.client();
  await assertStoreAgrees(t, { redis: fresh, expect: { 'killed/data': { state: 'incomplete' } } });
  const catalog = new CheckpointCatalog({ redis: fresh, lockTtlMs: 2000 });
  await new Promise((r) => setTimeout(r, 1600)); // the dead save's lock, restored from the AOF, runs out
  await catalog.delete('killed/data');
  await catalog.close();
  await assertStoreAgrees(t, { redis: fresh, expect: { 'killed/data': { state: 'absent' } } });
  fresh.disconnect();
});

t.test("a rank fails and the data Redis is gone, with ioredis' default retries: the save's cleanup gives up after its deadlines, not ioredis' (it took 180 s)", async (t) => {
  const server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  t.teardown(() => server.stop());
  class KillingWriter extends RedisStorageWriter {
    override async writeData(): Promise<WriteResult[]> {
      await server.kill();
      throw new Error('this rank failed'); // the failure is known at once: what follows is the abort on a dead server
    }
  }
  const client = new Redis({ port: server.port }); // ioredis' defaults: 20 retries per request, reconnecting forever
  client.on('error', () => {});
  t.teardown(() => client.disconnect());
  const started = Date.now();
  const outcome = await save({ w: pattern(100_000, 3) }, { checkpointId: 'killed/defaults', storageWriter: new KillingWriter({ redis: client }) }).then(
    () => undefined,
    (err: unknown) => err,
  );
  const ms = Date.now() - started;
  t.ok(outcome instanceof CheckpointError, 'the save reports a CheckpointError');
  // abort-save and the lock release each wait CLEANUP_DEADLINE_MS (2 s) at most.
  t.ok(ms < 15_000, `the failed save returned after ${ms} ms`);
  const again = await RedisServer.start({ port: server.port, dir: server.dir, args: ['--appendonly', 'yes'] });
  t.teardown(() => again.stop());
  await assertStoreAgrees(t, { redis: again.client(), expect: { 'killed/defaults': { state: 'incomplete' } } });
});
