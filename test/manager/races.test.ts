/**
 * The manager's races and budgets on real Redis, with rank processes where a load or save
 * must be in flight: a slow load pins its checkpoint against retention; gc leaves a save
 * that holds the lock alone; the memory pre-flight fails before writing, and the manager
 * makes room with what retention would delete anyway.
 */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointManager } from '../../src/manager/manager.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { startRanks } from '../helpers/child.js';
import { assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';
import { fillWords } from '../fixtures/incremental-data.js';
import { RedisServer } from '../helpers/redis-server.js';

const { server, redis, catalog } = await serverWithCatalog();

t.test('slow load vs retention: the pinned step is skipped while two ranks read it, deleted by the next save after', async (t) => {
  const manager = new CheckpointManager({ redis, run: 'slow', retention: { keepLast: 1 } });
  await manager.save(1, rankFixtureReference(11));
  const loaders = startRanks(server.url, 'load', 'slow/step-1', 2, () => ({ PAUSE_AT: 'readData', PAUSE_MS: '1500' }), 15_000);
  await Promise.all(loaders.map((l) => l.waitFor('paused-at-readData')));
  const during = await manager.save(2, rankFixtureReference(12));
  t.same(during.busy, ['slow/step-1'], 'retention skipped the pinned step');
  t.same(during.deleted, []);
  const loaded = await Promise.all(loaders.map((l) => l.done));
  t.ok(loaded.every((r) => r.json?.ok === true && r.json.wrong === 0 && r.json.seed === 11), 'both ranks loaded step 1 bit for bit while retention ran');
  const after = await manager.save(3, rankFixtureReference(13));
  t.same(after.deleted.sort(), ['slow/step-1', 'slow/step-2'], 'the next save deleted it');
  await manager.close();
  await assertStoreAgrees(t, { redis, expect: { 'slow/step-3': committed(rankFixtureReference(13)), 'slow/step-1': { state: 'absent' } } });
});

t.test('gc vs a running save: an incomplete checkpoint whose new save holds the lock is kept; the save commits', async (t) => {
  await redis.flushdb();
  const store = new CheckpointStore(redis, new KeySpace(), 'busy/ckpt');
  await store.beginSave(await store.nextToken(), 'crashed', 1, 1, true, 100);
  await new Promise((r) => setTimeout(r, 20));
  // A new save of the same id: it holds the lock and pauses before begin-save, so the id still reads incomplete.
  const savers = startRanks(server.url, 'save', 'busy/ckpt', 2, () => ({ SEED: '21', PAUSE_AT: 'prepareGlobalPlan', PAUSE_MS: '1500' }), 15_000);
  await savers[0]!.waitFor('paused-at-prepareGlobalPlan');
  t.equal((await catalog.get('busy/ckpt')).state, 'incomplete');
  t.same(await catalog.gc({ incompleteOlderThanMs: 0 }), { deleted: [], kept: ['busy/ckpt'] }, 'the lock keeps gc off it');
  const saved = await Promise.all(savers.map((s) => s.done));
  t.ok(saved.every((r) => r.json?.ok === true), 'the save committed');
  t.same(await catalog.gc({ incompleteOlderThanMs: 0 }), { deleted: [], kept: [] }, 'nothing incomplete left');
  await assertStoreAgrees(t, { redis, expect: { 'busy/ckpt': committed(rankFixtureReference(21)) } });
});

t.test('memory pre-flight with a small maxmemory', async (t) => {
  const small = await RedisServer.start({ args: ['--maxmemory', '24mb', '--maxmemory-policy', 'noeviction'] });
  const client = small.client();
  t.teardown(() => small.stop());
  // Distinct bytes (the manager's saves are incremental: a constant fill would be one piece stored once).
  const mib = (n: number, v: number) => {
    const bytes = new Uint8Array(n << 20);
    fillWords(new Uint32Array(bytes.buffer), v);
    return { w: new Tensor('uint8', [n << 20], bytes) };
  };

  // The sizes below assume 4 MiB − 64 B segments: the pre-flight allows maxInFlight (4) segments in flight beside the data.
  const segmentBytes = 4 * 1024 * 1024 - 64;
  await save(mib(1, 1), { checkpointId: 'pf/a', storageWriter: new RedisStorageWriter({ redis: client, segmentBytes }) });
  const before = (await client.keys('*')).sort();
  const err = await save(mib(16, 2), { checkpointId: 'pf/b', storageWriter: new RedisStorageWriter({ redis: client, segmentBytes }) }).then(() => undefined, (e: unknown) => e as Error & { cause?: Error & { code?: string } });
  t.equal(err?.cause?.code, 'INSUFFICIENT_MEMORY', 'the save fails with INSUFFICIENT_MEMORY');
  t.match(err?.cause?.message, /needs \d+ bytes but Redis can take \d+ more \(maxmemory \d+ − used_memory \d+\)/, 'naming both numbers');
  t.same((await client.keys('*')).sort(), before, 'nothing was written (not even a state hash)');
  await assertStoreAgrees(t, { redis: client, expect: { 'pf/a': committed(mib(1, 1)), 'pf/b': { state: 'absent' } } });

  // The manager makes room with what retention would delete once the new step commits, then retries.
  await client.flushdb();
  const keepAll = new CheckpointManager({ redis: client, run: 'm', writerOptions: { segmentBytes } });
  await keepAll.save(1, mib(6, 1));
  await keepAll.save(2, mib(6, 2));
  await keepAll.close();
  const manager = new CheckpointManager({ redis: client, run: 'm', retention: { keepLast: 1 }, writerOptions: { segmentBytes } });
  const result = await manager.save(3, mib(6, 3));
  t.same(result.freedForMemory.sort(), ['m/step-1', 'm/step-2'], 'deleted first, and says so');
  t.same(await manager.steps(), [3]);
  // Nothing left that retention may delete: a save that cannot fit fails, and step 3 stays.
  await t.rejects(manager.save(4, mib(12, 4)), { message: /INSUFFICIENT_MEMORY|needs \d+ bytes/ });
  t.same(await manager.steps(), [3]);
  await manager.close();
  await assertStoreAgrees(t, { redis: client, expect: { 'm/step-3': committed(mib(6, 3)), 'm/step-4': { state: 'absent' } } });
});
