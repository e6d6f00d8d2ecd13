/**
 * The memory pre-flight of incremental saves on a 3-master Redis Cluster (maxmemory on every
 * master, summed; docs/format.md, "Memory pre-flight"): with about 6 MiB free over the masters,
 * a full save of an 8 MiB state dict and an incremental save with 4 MiB of new pieces fail with
 * INSUFFICIENT_MEMORY before writing anything, and an incremental save of the unchanged state
 * dict passes, hashing each piece once. Ends with assertStoreAgrees (piece invariants included).
 */
import t from 'tap';
import type { Redis } from 'ioredis';
import { save } from '../../src/core/save.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { redisMemory } from '../../src/redis/memory.js';
import { piecesHashed } from '../../src/redis/piece-cache.js';
import { DEFAULT_SEGMENT_BYTES, segmentSizes } from '../../src/redis/segment-layout.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed } from '../helpers/invariants.js';
import { failureOf } from '../helpers/rank-results.js';
import { RedisClusterFixture } from '../helpers/redis-server.js';
import { incrementalStateDict } from '../fixtures/incremental-data.js';

const cluster = await RedisClusterFixture.start(3);
const client = cluster.client();
const masters = () => client.nodes('master') as Redis[];
const catalog = new CheckpointCatalog({ redis: client });
t.teardown(async () => {
  await catalog.close();
  await cluster.stop();
});

const [ROWS, COLS] = [256, 1024]; // 1 MiB tensors
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const MiB = 1024 * 1024;
const keysOnMasters = async (pattern: string) => (await Promise.all(masters().map((n) => n.keys(pattern)))).flat().sort();
const used = async (n: Redis) => Number(/used_memory:(\d+)/.exec(await n.info('memory'))![1]);

t.test('Cluster, maxmemory on the masters: a full save that cannot fit fails untouched, an unchanged incremental save passes', async (t) => {
  const a = incrementalStateDict(SEEDS, ROWS, COLS, 1);
  await save(a, { checkpointId: 'cm/a', storageWriter: new RedisStorageWriter({ redis: client, incremental: true }) });
  // About 2 MiB free on each master: 6 MiB over the Cluster, less than the 8 MiB state dict.
  for (const n of masters()) await n.config('SET', 'maxmemory', String((await used(n)) + 2 * MiB));
  t.teardown(() => Promise.all(masters().map((n) => n.config('SET', 'maxmemory', '0'))));
  const { usedMemory, maxMemory } = await redisMemory(client);
  t.ok(maxMemory !== null && maxMemory - usedMemory < 7 * MiB, `${maxMemory! - usedMemory} bytes free over the masters for an 8 MiB state dict`);

  const full = await failureOf(save(a, { checkpointId: 'cm/full', storageWriter: new RedisStorageWriter({ redis: client }) }));
  t.equal(full?.code, 'INSUFFICIENT_MEMORY', `a full save is refused (${full?.message?.slice(0, 140)})`);
  t.same(await keysOnMasters('dcp:data:*'), [], 'it wrote no data key');
  t.equal(await client.exists('dcp:ckpt:{cm/full}:state'), 0, 'and no state hash');

  const pieces = await keysOnMasters('dcp:blob:*');
  const changed = incrementalStateDict([11, 12, 13, 14, 5, 6, 7, 8], ROWS, COLS, 2);
  const incr = await failureOf(save(changed, { checkpointId: 'cm/changed', storageWriter: new RedisStorageWriter({ redis: client, incremental: true }) }));
  t.equal(incr?.code, 'INSUFFICIENT_MEMORY', `an incremental save with 4 MiB of new pieces is refused (${incr?.message?.slice(0, 140)})`);
  t.same(await keysOnMasters('dcp:blob:*'), pieces, 'it wrote no piece');
  t.equal(await client.exists('dcp:ckpt:{cm/changed}:state'), 0, 'and no state hash');

  const b = incrementalStateDict(SEEDS, ROWS, COLS, 2);
  const before = piecesHashed();
  await save(b, { checkpointId: 'cm/b', storageWriter: new RedisStorageWriter({ redis: client, incremental: true }) });
  const tensorPieces = SEEDS.length * segmentSizes(ROWS * COLS * 4, DEFAULT_SEGMENT_BYTES).length;
  t.equal(piecesHashed() - before, tensorPieces + 2, 'the unchanged incremental save passed, each tensor piece hashed once (pre-flight ids reused)');
  t.ok((await catalog.get('cm/b')).storedBytes < 64, 'and stored (almost) nothing');

  await Promise.all(masters().map((n) => n.config('SET', 'maxmemory', '0')));
  await assertStoreAgrees(t, { redis: client, expect: { 'cm/a': committed(a), 'cm/b': committed(b), 'cm/full': absent, 'cm/changed': absent } });
  for (const id of ['cm/a', 'cm/b']) t.equal(await catalog.delete(id), true, `${id} deleted`);
  t.same((await keysOnMasters('dcp:*')).filter((k) => k !== 'dcp:catalog' && k !== 'dcp:fence'), [], 'no key of the prefix left on any master');
});
