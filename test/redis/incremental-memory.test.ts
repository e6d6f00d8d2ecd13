/**
 * The memory pre-flight of incremental saves counts what they will store (new pieces), not
 * their logical bytes: on a nearly full Redis (maxmemory 64 MB, noeviction) an incremental
 * save of an unchanged state dict passes where a full save fails, and an incremental save
 * whose new pieces do not fit fails with INSUFFICIENT_MEMORY before anything is written.
 */
import t from 'tap';
import { save } from '../../src/core/save.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed } from '../helpers/invariants.js';
import { failureOf } from '../helpers/rank-results.js';
import { RedisServer } from '../helpers/redis-server.js';
import { incrementalStateDict } from '../fixtures/incremental-data.js';

const server = await RedisServer.start({ args: ['--maxmemory', '64mb', '--maxmemory-policy', 'noeviction'] });
const redis = server.client();
const catalog = new CheckpointCatalog({ redis });
t.teardown(async () => {
  await catalog.close();
  await server.stop();
});

const [ROWS, COLS] = [256, 1024]; // 1 MiB tensors
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const memory = async () => {
  const info = await redis.info('memory');
  return { used: Number(/used_memory:(\d+)/.exec(info)![1]), max: Number(/maxmemory:(\d+)/.exec(info)![1]) };
};

t.test('nearly full Redis: incremental save of unchanged bytes passes, full save and a save of too many new pieces fail untouched', async (t) => {
  const sd = incrementalStateDict(SEEDS, ROWS, COLS, 1);
  await save(sd, { checkpointId: 'm/a', storageWriter: new RedisStorageWriter({ redis, incremental: true }) });
  // Fill Redis until 3 MiB are free: less than the 8 MiB state dict.
  let free = 0;
  for (let i = 0; ; i++) {
    const { used, max } = await memory();
    free = max - used;
    if (free < 3.5 * 1024 * 1024) break;
    await redis.set(`filler:${i}`, Buffer.alloc(Math.min(512 * 1024, free - 3 * 1024 * 1024)));
  }
  t.ok(free < 4 * 1024 * 1024, `nearly full: ${free} bytes free for an 8 MiB state dict`);

  const same = incrementalStateDict(SEEDS, ROWS, COLS, 2);
  await save(same, { checkpointId: 'm/b', storageWriter: new RedisStorageWriter({ redis, incremental: true }) });
  t.ok((await catalog.get('m/b')).storedBytes < 64, 'the incremental save of unchanged tensors passed pre-flight and stored (almost) nothing');

  const full = await failureOf(save(same, { checkpointId: 'm/c', storageWriter: new RedisStorageWriter({ redis }) }));
  t.equal(full?.code, 'INSUFFICIENT_MEMORY', `a full save of the same state dict is refused (${full?.message?.slice(0, 120)})`);

  const pieces = (await redis.keys('dcp:blob:*')).length;
  const changed = incrementalStateDict([11, 12, 13, 14, 5, 6, 7, 8], ROWS, COLS, 3);
  const incr = await failureOf(save(changed, { checkpointId: 'm/d', storageWriter: new RedisStorageWriter({ redis, incremental: true }) }));
  t.equal(incr?.code, 'INSUFFICIENT_MEMORY', `an incremental save with 4 MiB of new pieces is refused (${incr?.message?.slice(0, 120)})`);
  t.equal(await redis.exists('dcp:ckpt:{m/d}:state', 'dcp:ckpt:{m/c}:state'), 0, 'the refused saves left no state hash');
  t.equal((await redis.keys('dcp:blob:*')).length, pieces, 'and wrote no piece');

  await redis.del(...(await redis.keys('filler:*')));
  const fits = await failureOf(save(changed, { checkpointId: 'm/d', storageWriter: new RedisStorageWriter({ redis, incremental: true }) }));
  t.equal(fits, undefined, 'with the filler gone it fits');
  await assertStoreAgrees(t, { redis, expect: { 'm/a': committed(sd), 'm/b': committed(same), 'm/c': absent, 'm/d': committed(changed) } });
  for (const id of ['m/a', 'm/b', 'm/d']) await catalog.delete(id);
  t.same(await redis.keys('dcp:blob*'), [], 'no piece left');
});
