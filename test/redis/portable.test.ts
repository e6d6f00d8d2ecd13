/**
 * RedisStorageWriter and RedisProcessGroup described as plain data and rebuilt, as the
 * asyncSave worker does (src/redis/portable.ts, src/group/portable-group.ts): what a
 * description keeps (URL, client options with TLS and ioredis keyPrefix, every writer
 * option) and drops (functions), and that a rebuilt writer saves a checkpoint that loads.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { asyncSave, uploadTimesOf } from '../../src/core/async-save.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { derivedGroupId, redisProcessGroupFromDescription } from '../../src/group/portable-group.js';
import { RedisProcessGroup } from '../../src/group/redis-process-group.js';
import { redisStorageWriterFromDescription } from '../../src/redis/portable.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisClusterFixture, RedisServer } from '../helpers/redis-server.js';

t.test('a writer given an ioredis client describes its options, TLS and prefixes as plain data; functions do not cross', async (t) => {
  const client = new Redis({ host: 'redis.example', port: 6380, lazyConnect: true, tls: { servername: 'redis.example', rejectUnauthorized: false, ca: Buffer.from('CA') }, keyPrefix: 'app:', password: 'pw', db: 3, retryStrategy: () => 5 });
  const writer = new RedisStorageWriter({ redis: client, lockRedis: ['redis://lock-1:6379'], prefix: 'ckp', lockTtlMs: 4321, overwrite: false, maxInFlight: 3 });
  const d = writer.describe();
  t.match(d, { prefix: 'ckp', lockTtlMs: 4321, overwrite: false, maxInFlight: 3, lockRedis: ['redis://lock-1:6379'] });
  const redis = d.redis as { kind: string; options: Record<string, unknown> };
  t.equal(redis.kind, 'redis');
  t.match(redis.options, { host: 'redis.example', port: 6380, keyPrefix: 'app:', password: 'pw', db: 3, tls: { servername: 'redis.example', rejectUnauthorized: false } });
  t.same(Buffer.from((redis.options.tls as { ca: Uint8Array }).ca).toString(), 'CA', 'TLS material is kept');
  t.notOk('retryStrategy' in redis.options, 'functions are dropped (defaults apply in the worker)');
  t.same(structuredClone(d), d, 'the description survives structured cloning (postMessage)');
  t.same(new RedisStorageWriter({ redis: 'rediss://h:1/2' }).describe(), { redis: 'rediss://h:1/2' }, 'a URL stays a URL');
  client.disconnect();
});

t.test('a rebuilt writer and group work like the originals', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const client = new Redis({ port: server.port, host: '127.0.0.1', disableClientInfo: true });
  t.teardown(() => client.disconnect());
  const original = new RedisStorageWriter({ redis: client, prefix: 'moved' });
  const rebuilt = redisStorageWriterFromDescription(original.describe());
  const w = new Tensor('int16', [5000], Int16Array.from({ length: 5000 }, (_, i) => i - 2500));
  await save({ w, step: 1 }, { checkpointId: 'portable/1', storageWriter: rebuilt });
  await rebuilt.close();
  await assertStoreAgrees(t, { redis: server.client(), prefix: 'moved', expect: { 'portable/1': committed({ w, step: 1 }) } });

  const group = new RedisProcessGroup({ redis: client, groupId: 'job-7', rank: 0, worldSize: 1, prefix: 'moved' });
  const twin = redisProcessGroupFromDescription(group.describe(), { namespace: 'async-1' });
  t.equal(twin.groupId, 'job-7:async-1', 'the rebuilt group runs under the derived id');
  t.same(await twin.allGather(5), [5]);
  await twin.close();
  await group.close();
  const long = derivedGroupId('g'.repeat(200), 'async-12');
  t.ok(long.length <= 200 && long.endsWith(':async-12') && long !== derivedGroupId('g'.repeat(199) + 'h', 'async-12'), 'long ids are hashed down, still distinct');
});

t.test('asyncSave through a writer given an ioredis Cluster: the worker rebuilds the Cluster client from its startup nodes and options', async (t) => {
  const cluster = await RedisClusterFixture.start(3);
  t.teardown(() => cluster.stop());
  const client = cluster.client();
  const writer = new RedisStorageWriter({ redis: client });
  t.equal((writer.describe().redis as { kind: string }).kind, 'cluster');
  const w = new Tensor('float64', [70_000], Float64Array.from({ length: 70_000 }, (_, i) => i / 3));
  const response = asyncSave({ w, step: 4 }, { checkpointId: 'cluster/async', storageWriter: writer });
  await response.staged;
  w.data.fill(0);
  await response.committed;
  t.ok(await uploadTimesOf(response), 'uploaded by the worker thread');
  const dest = { w: new Tensor('float64', [70_000]), step: 0 };
  await load(dest, { checkpointId: 'cluster/async', storageReader: new RedisStorageReader({ redis: client }) });
  t.same(Buffer.from(dest.w.bytes), Buffer.from(Float64Array.from({ length: 70_000 }, (_, i) => i / 3).buffer), 'pre-mutation bytes, bit for bit');
  t.equal(dest.step, 4);
});
