/**
 * GET /metrics (issue 14) against a real Redis: after saves in two runs, a crashed save
 * and deletes, redis_dcp_checkpoints{state} equals what GET /checkpoints?state= lists, the
 * bytes and memory gauges equal CheckpointCatalog.usage() (what GET /usage serves), the
 * HTTP histogram counts requests by route template, default process metrics are there,
 * and ADMIN_TOKEN_READS protects it (401 without, 403 wrong token).
 */
import t from 'tap';
import { save } from '../../src/core/save.js';
import { CHECKPOINT_STATES } from '../../src/redis/checkpoint-store.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp } from '../../src/server/app.js';
import { catalogGauges } from '../../src/server/metrics.js';
import { committed, absent, incomplete, assertStoreAgrees } from '../helpers/invariants.js';
import { sample } from '../helpers/prometheus.js';
import { RedisServer } from '../helpers/redis-server.js';
import { floatTensor, TOKEN } from './fixture.js';

const auth = { authorization: `Bearer ${TOKEN}` };

t.test('GET /metrics agrees with GET /checkpoints and the usage report', async (t) => {
  const server = await RedisServer.start();
  const redis = server.client();
  await redis.config('SET', 'maxmemory', String(512 * 2 ** 20));
  const app = await buildApp({ redis, adminToken: TOKEN, adminTokenReads: true });
  const catalog = new CheckpointCatalog({ redis });
  t.teardown(async () => {
    await app.close();
    await catalog.close();
    await redis.quit();
    await server.stop();
  });

  // Protected like every read.
  t.equal((await app.inject('/metrics')).statusCode, 401);
  t.equal((await app.inject({ url: '/metrics', headers: { authorization: 'Bearer wrong-token-0123456789abcdef0000' } })).statusCode, 403);

  const dicts = { a: { w: floatTensor([1, 2, 3, 4]) }, b: { w: floatTensor(Array.from({ length: 1000 }, (_, i) => i)) }, c: { x: floatTensor([5, 6]) } };
  await save(dicts.a, { checkpointId: 'run1/a', storageWriter: new RedisStorageWriter({ redis }) });
  await save(dicts.b, { checkpointId: 'run1/b', storageWriter: new RedisStorageWriter({ redis }) });
  await save(dicts.c, { checkpointId: 'run2/c', storageWriter: new RedisStorageWriter({ redis }) });
  await save(dicts.a, { checkpointId: 'run2/gone', storageWriter: new RedisStorageWriter({ redis }) });
  class CrashingWriter extends RedisStorageWriter {
    override async writeData(...args: Parameters<RedisStorageWriter['writeData']>): ReturnType<RedisStorageWriter['writeData']> {
      await super.writeData(...args);
      throw new Error('simulated crash');
    }
  }
  await t.rejects(save(dicts.b, { checkpointId: 'run3/crashed', storageWriter: new CrashingWriter({ redis }) }));
  // Two incremental saves of the same state dict: logically twice, stored once.
  await save(dicts.b, { checkpointId: 'run4/x', storageWriter: new RedisStorageWriter({ redis, incremental: true }) });
  await save(dicts.b, { checkpointId: 'run4/y', storageWriter: new RedisStorageWriter({ redis, incremental: true }) });
  t.equal((await app.inject({ method: 'DELETE', url: '/checkpoints/run2%2Fgone', headers: auth })).statusCode, 204);
  t.equal((await app.inject({ url: '/checkpoints/run1%2Fnone', headers: auth })).statusCode, 404);

  const res = await app.inject({ url: '/metrics', headers: auth });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const text = res.body;

  for (const state of CHECKPOINT_STATES) {
    const listed = (await app.inject({ url: '/checkpoints', query: { state, limit: '1000' }, headers: auth })).json() as { items: unknown[] };
    t.equal(sample(text, `redis_dcp_checkpoints{state="${state}"}`), listed.items.length, `${state}: as many as GET /checkpoints?state=${state} lists`);
  }
  t.equal(sample(text, 'redis_dcp_checkpoints{state="committed"}'), 5);
  t.equal(sample(text, 'redis_dcp_checkpoints{state="incomplete"}'), 1);

  // The same numbers as the usage report (GET /usage serves CheckpointCatalog.usage()).
  const usageRoute = await app.inject({ url: '/usage', headers: auth });
  const usage = usageRoute.statusCode === 200 ? usageRoute.json() : await catalog.usage();
  const expected = catalogGauges(usage);
  for (const kind of ['logical', 'stored', 'pooled'] as const) t.equal(sample(text, `redis_dcp_checkpoint_bytes{kind="${kind}"}`), expected.bytes[kind], `bytes ${kind}`);
  t.equal(expected.bytes.logical, 16 + 4000 + 8 + 2 * 4000, 'logical: the five commits (the crashed save aborted and dropped its data)');
  t.equal(expected.bytes.stored, usage.committed.bytes + usage.writing.bytes + usage.incomplete.bytes);
  t.ok(expected.bytes.stored <= expected.bytes.logical - 4000, `stored: the incremental pair's pieces once (${expected.bytes.stored} of ${expected.bytes.logical})`);
  t.equal(sample(text, 'redis_dcp_redis_maxmemory_bytes'), 512 * 2 ** 20);
  const used = sample(text, 'redis_dcp_redis_used_memory_bytes')!;
  t.ok(used > 0 && Math.abs(used - expected.usedMemory) < 2 ** 20, 'used memory as INFO reports it (read a moment apart)');

  // Requests by route template and status.
  t.equal(sample(text, 'http_request_duration_seconds_count{method="DELETE",route="/checkpoints/:id",status_code="204"}'), 1);
  t.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="/checkpoints/:id",status_code="404"}'), 1);
  t.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="/metrics",status_code="401"}'), 1);
  t.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="/metrics",status_code="403"}'), 1);
  // Default process metrics and the library's.
  t.match(text, /^process_cpu_user_seconds_total \d/m);
  t.match(text, /^nodejs_heap_size_used_bytes \d/m);
  t.ok(sample(text, 'redis_dcp_deleted_bytes_total')! >= 16, 'the admin delete counted by the library metrics');

  await assertStoreAgrees(t, { redis, expect: { 'run1/a': committed(dicts.a), 'run1/b': committed(dicts.b), 'run2/c': committed(dicts.c), 'run2/gone': absent, 'run3/crashed': incomplete, 'run4/x': committed(dicts.b), 'run4/y': committed(dicts.b) } });
});
