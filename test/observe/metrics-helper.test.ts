/**
 * createMetrics (issue 14): the redis_dcp_* prom-client metrics follow what this process
 * saves, loads and deletes against a real Redis: bytes, per-phase durations, failures by
 * code, asyncSave's blocked time; one set per registry; close() unsubscribes and removes them.
 */
import { hasSubscribers } from 'node:diagnostics_channel';
import { Registry } from 'prom-client';
import t from 'tap';
import { asyncSave } from '../../src/core/async-save.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { createMetrics, DCP_METRIC_NAMES } from '../../src/observe/metrics.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed } from '../helpers/invariants.js';
import { sample } from '../helpers/prometheus.js';
import { RedisServer } from '../helpers/redis-server.js';

t.test('the metrics follow saves, loads, failures and deletes', async (t) => {
  const server = await RedisServer.start();
  const redis = server.client();
  const registry = new Registry();
  const metrics = createMetrics({ registry });
  t.teardown(async () => {
    metrics.close();
    await redis.quit();
    await server.stop();
  });
  t.equal(createMetrics({ registry }), metrics, 'one set per registry');

  const w = new Tensor('float32', [1024], new Float32Array(1024).fill(1));
  await save({ w }, { checkpointId: 'm/a', storageWriter: new RedisStorageWriter({ redis }) });
  await t.rejects(save({ w }, { checkpointId: 'm/a', storageWriter: new RedisStorageWriter({ redis, overwrite: false }) }));
  const into = { w: new Tensor('float32', [1024], new Float32Array(1024)) };
  await load(into, { checkpointId: 'm/a', storageReader: new RedisStorageReader({ redis }) });
  await t.rejects(load(into, { checkpointId: 'm/none', storageReader: new RedisStorageReader({ redis }) }));
  const writer = new RedisStorageWriter({ redis: server.url });
  t.teardown(() => writer.close());
  await asyncSave({ w }, { checkpointId: 'm/b', storageWriter: writer }).committed;
  const catalog = new CheckpointCatalog({ redis });
  t.teardown(() => catalog.close());
  await catalog.delete('m/b');

  const text = await registry.metrics();
  for (const name of DCP_METRIC_NAMES) t.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is registered`);
  t.equal(sample(text, 'redis_dcp_saved_bytes_total'), 8192, 'two committed saves of 4 KiB');
  t.equal(sample(text, 'redis_dcp_save_failures_total{code="CHECKPOINT_EXISTS"}'), 1, 'the refused overwrite, by the code of its cause');
  for (const phase of ['plan', 'stage', 'write', 'commit', 'total']) t.equal(sample(text, `redis_dcp_save_duration_seconds_count{phase="${phase}"}`), 2, `save ${phase} observed per committed save`);
  t.equal(sample(text, 'redis_dcp_async_blocked_seconds_count'), 1);
  t.equal(sample(text, 'redis_dcp_loaded_bytes_total'), 4096);
  t.equal(sample(text, 'redis_dcp_load_failures_total{code="CHECKPOINT_NOT_FOUND"}'), 1);
  for (const phase of ['plan', 'read', 'total']) t.equal(sample(text, `redis_dcp_load_duration_seconds_count{phase="${phase}"}`), 1);
  t.equal(sample(text, 'redis_dcp_delete_duration_seconds_count'), 1);
  t.equal(sample(text, 'redis_dcp_deleted_bytes_total'), 4096);

  metrics.close();
  t.equal((await registry.metrics()).trim(), '', 'close() removes the metrics');
  t.notOk(hasSubscribers('tracing:redis-dcp:save:asyncEnd'), 'and stops listening');
  await save({ w }, { checkpointId: 'm/c', storageWriter: new RedisStorageWriter({ redis }) });
  await assertStoreAgrees(t, { redis, expect: { 'm/a': committed({ w }), 'm/b': absent, 'm/c': committed({ w }) } });
});
