/**
 * Faults of incremental saves with real processes (test/fixtures/incremental-save.ts,
 * test/fixtures/delete.ts): a save SIGKILLed before/after its claims and before/after the
 * commit script; a delete of A racing the incremental save of B that references A's pieces,
 * in both orders; a delete killed after begin-delete. Each ends with assertStoreAgrees
 * (piece counts included) and, once everything is deleted, no piece left.
 *
 * The tests run at once (t.jobs), each on a Redis server of its own (scene()): their checks are
 * exhaustive over the keyspace (every piece, every key). Nothing here is timed: processes are
 * paused and resumed through markers and Redis keys, lapsed locks are polled for.
 */
import t, { type Test } from 'tap';
import { save } from '../../src/core/save.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startFixture } from '../helpers/child.js';
import { segmentSizes } from '../../src/redis/segment-layout.js';
import { incrementalStateDict } from '../fixtures/incremental-data.js';

// The tests at once: they spend their time in save/delete processes and lock lapses.
t.jobs = 4;

const SEEDS_A = [1, 2, 3, 4, 5, 6];
const SEEDS_B = [1, 2, 9, 4, 5, 6];
const ROWS = 64;
const COLS = 1024;
const segmentBytes = 64 * 1024 - 64;
const refA = incrementalStateDict(SEEDS_A, ROWS, COLS, 1);
const refB = incrementalStateDict(SEEDS_B, ROWS, COLS, 2);

/** A Redis server of the test's own with a catalog on it, stopped when the test ends, and the helpers bound to it. */
async function scene(t: Test) {
  const server = await RedisServer.start();
  const redis = server.client();
  const catalog = new CheckpointCatalog({ redis, lockTtlMs: 1500 });
  t.teardown(async () => {
    await catalog.close();
    await server.stop();
  });

  const saveInProcess = (id: string, seeds: number[], step: number) =>
    save(incrementalStateDict(seeds, ROWS, COLS, step), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, incremental: true, segmentBytes }) });

  const saveProcess = (id: string, env: NodeJS.ProcessEnv) => startFixture('test/fixtures/incremental-save.ts', [server.url, id], { SEEDS: SEEDS_B.join(','), ROWS: String(ROWS), COLS: String(COLS), LOCK_TTL_MS: '1500', ...env });

  async function lockLapsed(id: string): Promise<void> {
    while ((await redis.exists(`dcp:ckpt:{${id}}:lock`)) === 1) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1600)); // and the crashed save's lease
  }

  async function cleanUp(t: Test, ids: string[]): Promise<void> {
    for (const id of ids) await catalog.delete(id);
    t.same(await redis.keys('dcp:blob*'), [], 'everything deleted: no piece, count or byte counter left');
  }

  return { server, redis, catalog, saveInProcess, saveProcess, lockLapsed, cleanUp };
}

for (const stop of ['before-claim', 'after-claim', 'before-commit', 'after-commit'] as const) {
  t.test(`incremental save of B SIGKILLed ${stop}; A shares all but one tensor with it`, async (t) => {
    const { redis, catalog, saveInProcess, saveProcess, lockLapsed, cleanUp } = await scene(t);
    const [a, b] = [`k/${stop}/a`, `k/${stop}/b`];
    await saveInProcess(a, SEEDS_A, 1);
    const result = await saveProcess(b, { STOP: stop }).done;
    t.equal(result.signal, 'SIGKILL', `the save process died ${stop}`);
    const bState = stop === 'after-commit' ? committed(refB) : incomplete;
    await assertStoreAgrees(t, { redis, expect: { [a]: committed(refA), [b]: bState } });
    if (stop === 'after-claim' || stop === 'before-commit') {
      t.ok((await redis.scard(`dcp:ckpt:{${b}}:pieces:${(await redis.smembers(`dcp:ckpt:{${b}}:saves`))[0]}`)) > 0, 'the dead save holds its claims');
    }
    t.equal(await catalog.delete(a), true, 'A deleted while the dead save of B holds claims on its pieces');
    await assertStoreAgrees(t, { redis, expect: { [a]: absent, [b]: bState } });
    await lockLapsed(b);
    await saveInProcess(b, SEEDS_B, 2);
    await assertStoreAgrees(t, { redis, expect: { [a]: absent, [b]: committed(refB) } });
    await cleanUp(t, [b]);
  });
}

t.test('delete of A while the save of B that references its pieces is paused after its claims: B commits whole, A goes', async (t) => {
  const { redis, catalog, saveInProcess, saveProcess, cleanUp } = await scene(t);
  const [a, b] = ['race1/a', 'race1/b'];
  await saveInProcess(a, SEEDS_A, 1);
  const child = saveProcess(b, { PAUSE: 'after-claim', RESUME_KEY: 'race1:resume' });
  await child.waitFor('paused-after-claim');
  const [saveId] = await redis.smembers(`dcp:ckpt:{${b}}:saves`);
  const claimed = new Set((await redis.smembers(`dcp:ckpt:{${b}}:pieces:${saveId}`)).map((id) => `dcp:blob:${id}`));
  const shared = (await redis.keys('dcp:blob:*')).filter((k) => claimed.has(k));
  t.equal(shared.length, 5 * segmentSizes(ROWS * COLS * 4, segmentBytes).length, "B claimed the pieces of A's five unchanged tensors");
  t.equal(await catalog.delete(a), true, 'A deleted');
  const left = new Set(await redis.keys('dcp:blob:*'));
  t.same(shared.filter((k) => !left.has(k)), [], "the pieces B claimed survive A's delete");
  await redis.set('race1:resume', '1');
  const result = await child.done;
  t.same(result.json, { ok: true }, 'B committed');
  await redis.del('race1:resume');
  await assertStoreAgrees(t, { redis, expect: { [a]: absent, [b]: committed(refB) } });
  t.ok((await catalog.get(b)).storedBytes <= ROWS * COLS * 4 + 64, 'B wrote only its changed tensor (it found the rest stored)');
  await cleanUp(t, [b]);
});

t.test('save of B while the delete of A is paused after begin-delete: B references the pieces A still holds; they survive the delete', async (t) => {
  const { server, redis, catalog, saveInProcess, cleanUp } = await scene(t);
  const [a, b] = ['race2/a', 'race2/b'];
  await saveInProcess(a, SEEDS_A, 1);
  const del = startFixture('test/fixtures/delete.ts', [server.url, a, '5000'], { PAUSE_AFTER: 'begin', RESUME_KEY: 'race2:resume' });
  await del.waitFor('delete-paused-after-begin');
  await saveInProcess(b, SEEDS_B, 2);
  t.ok((await catalog.get(b)).storedBytes <= ROWS * COLS * 4 + 64, "B found A's pieces stored and claimed them");
  await redis.set('race2:resume', '1');
  t.same((await del.done).json, { ok: true, deleted: true }, 'the delete of A finished');
  await redis.del('race2:resume');
  await assertStoreAgrees(t, { redis, expect: { [a]: absent, [b]: committed(refB) } });
  await cleanUp(t, [b]);
});

t.test('a delete of A SIGKILLed after begin-delete: A incomplete, its pieces still counted; a second delete finishes; B unaffected', async (t) => {
  const { server, redis, catalog, saveInProcess, lockLapsed, cleanUp } = await scene(t);
  const [a, b] = ['kd/a', 'kd/b'];
  await saveInProcess(a, SEEDS_A, 1);
  await saveInProcess(b, SEEDS_B, 2);
  const result = await startFixture('test/fixtures/delete.ts', [server.url, a, '1500'], { STOP_AFTER: 'begin' }).done;
  t.equal(result.signal, 'SIGKILL');
  await assertStoreAgrees(t, { redis, expect: { [a]: incomplete, [b]: committed(refB) } });
  await lockLapsed(a);
  t.equal(await catalog.delete(a), true, 'the second delete finishes it');
  await assertStoreAgrees(t, { redis, expect: { [a]: absent, [b]: committed(refB) } });
  await cleanUp(t, [b]);
});

t.test('a delete of A SIGKILLed after its first release script (part of its pieces released): a second delete finishes; B, sharing pieces, loads; nothing leaks', async (t) => {
  const { server, redis, catalog, lockLapsed, cleanUp } = await scene(t);
  const [a, b] = ['kr/a', 'kr/b'];
  // 960-byte pieces: 1638 per checkpoint, so the delete needs two release scripts (1000 pieces each).
  const small = (id: string, seeds: number[], step: number) => save(incrementalStateDict(seeds, ROWS, COLS, step), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, incremental: true, segmentBytes: 1024 - 64 }) });
  await small(a, SEEDS_A, 1);
  await small(b, SEEDS_B, 2);
  const saveOfA = (await redis.smembers(`dcp:ckpt:{${a}}:saves`))[0]!;
  const held = await redis.scard(`dcp:ckpt:{${a}}:pieces:${saveOfA}`);
  const result = await startFixture('test/fixtures/delete.ts', [server.url, a, '1500'], { STOP_AFTER: 'released' }).done;
  t.equal(result.signal, 'SIGKILL', 'the delete died after its first release script');
  const left = await redis.scard(`dcp:ckpt:{${a}}:pieces:${saveOfA}`);
  t.ok(left > 0 && left < held, `part-way: ${held - left} of ${held} references released`);
  await assertStoreAgrees(t, { redis, expect: { [a]: incomplete, [b]: committed(refB) } });
  await lockLapsed(a);
  t.equal(await catalog.delete(a), true, 'the second delete finishes it');
  await assertStoreAgrees(t, { redis, expect: { [a]: absent, [b]: committed(refB) } });
  await cleanUp(t, [b]);
});
