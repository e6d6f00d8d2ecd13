import t from 'tap';
import { Redis } from 'ioredis';
import { CheckpointError } from '../../src/core/errors.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { checkServer, connect, closeClient } from '../../src/redis/connection.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed, damaged, incomplete } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

const filled = (v: number) => new Tensor('float32', [64], new Float32Array(64).fill(v));
const codeOf = (err: unknown) => (err instanceof CheckpointError ? (err.failures.get(0) as { code?: string }).code : (err as { code?: string }).code);

async function loadCode(id: string): Promise<string | undefined> {
  const err = await load({ w: filled(0) }, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  return codeOf(err);
}

t.test('only committed checkpoints load: unknown, writing, incomplete and deleting are refused', async (t) => {
  t.equal(await loadCode('st/none'), 'CHECKPOINT_NOT_FOUND');
  const store = new CheckpointStore(redis, new KeySpace(), 'st/writing');
  await store.beginSave(await store.nextToken(), 'pending1', 10_000, 1, true);
  t.equal(await loadCode('st/writing'), 'CHECKPOINT_NOT_COMMITTED', 'a save in progress');
  await store.extendLease(String((await store.state())!.fence), 1);
  await new Promise((r) => setTimeout(r, 10));
  t.equal((await store.state())!.status, 'incomplete');
  t.equal(await loadCode('st/writing'), 'CHECKPOINT_NOT_COMMITTED', 'a save whose coordinator vanished');
  await save({ w: filled(1) }, { checkpointId: 'st/deleting', storageWriter: new RedisStorageWriter({ redis }) });
  const deleting = new CheckpointStore(redis, new KeySpace(), 'st/deleting');
  await deleting.beginDelete(await deleting.nextToken());
  t.equal(await loadCode('st/deleting'), 'CHECKPOINT_NOT_COMMITTED', 'a checkpoint being deleted');
  const err = await new RedisStorageReader({ redis, checkpointId: 'st/deleting' }).readMetadata().catch((e: unknown) => e);
  t.match((err as Error).message, /not committed \(state: deleting\)/);
  await assertStoreAgrees(t, { redis, expect: { 'st/none': absent, 'st/writing': incomplete, 'st/deleting': incomplete }, exhaustive: false });
});

t.test('while an overwrite is in progress the previous commit stays loadable', async (t) => {
  await save({ w: filled(1) }, { checkpointId: 'st/over', storageWriter: new RedisStorageWriter({ redis }) });
  const store = new CheckpointStore(redis, new KeySpace(), 'st/over');
  await store.beginSave(await store.nextToken(), 'next', 10_000, 1, true);
  t.equal((await store.state())!.status, 'committed');
  const sd = { w: filled(0) };
  await load(sd, { checkpointId: 'st/over', storageReader: new RedisStorageReader({ redis }) });
  t.equal(sd.w.data[63], 1);
  await assertStoreAgrees(t, { redis, expect: { 'st/over': committed({ w: filled(1) }) }, exhaustive: false });
});

t.test('a missing segment fails the load naming FQN and key', async (t) => {
  await save({ w: filled(5) }, { checkpointId: 'st/missing', storageWriter: new RedisStorageWriter({ redis }) });
  const [key] = await redis.keys('dcp:data:st/missing:*');
  await redis.del(key!);
  const err = await load({ w: filled(0) }, { checkpointId: 'st/missing', storageReader: new RedisStorageReader({ redis }) }).catch((e: unknown) => e);
  const cause = (err as CheckpointError).failures.get(0)!;
  t.equal(codeOf(err), 'DATA_MISSING');
  t.match(cause.message, /"w"/);
  t.match(cause.message, key!);
  await assertStoreAgrees(t, { redis, expect: { 'st/missing': damaged({ w: filled(0) }, 'missing_key') }, exhaustive: false });
});

t.test('URL connections are opened and closed by the writer and reader', async (t) => {
  const before = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]);
  const writer = new RedisStorageWriter({ redis: server.url });
  await save({ w: filled(3) }, { checkpointId: 'st/url', storageWriter: writer });
  await writer.close();
  const reader = new RedisStorageReader({ redis: server.url });
  const sd = { w: filled(0) };
  await load(sd, { checkpointId: 'st/url', storageReader: reader });
  await reader.close();
  t.equal(sd.w.data[0], 3);
  await new Promise((r) => setTimeout(r, 50));
  const after = Number(/connected_clients:(\d+)/.exec(await redis.info('clients'))![1]);
  t.equal(after, before, 'no connection left open');
  await assertStoreAgrees(t, { redis, expect: { 'st/url': committed({ w: filled(3) }) }, exhaustive: false });
  t.throws(() => connect('http://x'), { code: 'INVALID_REDIS' });
});

t.test('checkServer warns unless maxmemory-policy is noeviction', async (t) => {
  const ok = await checkServer(redis);
  t.equal(ok.maxmemoryPolicy, 'noeviction');
  t.same(ok.warnings, []);
  t.match(ok.version, /^\d+\.\d+/);
  const lru = await RedisServer.start({ args: ['--maxmemory-policy', 'allkeys-lru'] });
  t.teardown(() => lru.stop());
  const client = new Redis({ port: lru.port, disableClientInfo: true });
  const report = await checkServer(client);
  t.equal(report.maxmemoryPolicy, 'allkeys-lru');
  t.match(report.warnings.join('\n'), /evict/);
  await closeClient(client);
});
