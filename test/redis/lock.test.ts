import t from 'tap';
import { Redis } from 'ioredis';
import { CheckpointError } from '../../src/core/errors.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { KeySpace } from '../../src/redis/keys.js';
import { acquireLock, createRedlock } from '../../src/redis/lock.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startFixture } from '../helpers/child.js';
import { absent, assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

const filled = (v: number) => new Tensor('int32', [1000], new Int32Array(1000).fill(v));
const codeOf = (err: unknown) => (err instanceof CheckpointError ? (err.failures.get(0) as { code?: string }).code : (err as { code?: string }).code);

t.test('a held lock makes a save fail fast with CHECKPOINT_LOCKED, or wait for it', async (t) => {
  const redlock = createRedlock([redis]);
  const resource = new KeySpace().checkpoint('lock/a').lock;
  const held = await acquireLock(redlock, resource, 'lock/a', { clients: [redis], ttlMs: 5000, waitMs: 0 });
  const err = await save({ w: filled(1) }, { checkpointId: 'lock/a', storageWriter: new RedisStorageWriter({ redis }) }).catch((e: unknown) => e);
  t.equal(codeOf(err), 'CHECKPOINT_LOCKED');
  t.same(await redis.keys('dcp:data:lock/a:*'), [], 'nothing written unlocked');
  setTimeout(() => void held.release(), 300);
  await save({ w: filled(2) }, { checkpointId: 'lock/a', storageWriter: new RedisStorageWriter({ redis, lockWaitMs: 3000 }) });
  const w = filled(0);
  await load({ w }, { checkpointId: 'lock/a', storageReader: new RedisStorageReader({ redis }) });
  t.equal(w.data[999], 2);
  await assertStoreAgrees(t, { redis, expect: { 'lock/a': committed({ w: filled(2) }) }, exhaustive: false });
});

t.test('concurrent saves to one id never interleave', async (t) => {
  const outcomes = await Promise.allSettled([3, 4, 5, 6].map((v) => save({ w: filled(v) }, { checkpointId: 'lock/race', storageWriter: new RedisStorageWriter({ redis, lockWaitMs: 10_000 }) })));
  t.ok(outcomes.every((o) => o.status === 'fulfilled'), 'with waiting, all commit one after another');
  const w = filled(0);
  await load({ w }, { checkpointId: 'lock/race', storageReader: new RedisStorageReader({ redis }) });
  t.ok([3, 4, 5, 6].includes(w.data[0]!) && w.data.every((x) => x === w.data[0]), 'one save’s data, whole');
  const fast = await Promise.allSettled([7, 8].map((v) => save({ w: filled(v) }, { checkpointId: 'lock/race2', storageWriter: new RedisStorageWriter({ redis }) })));
  const codes = fast.map((o) => (o.status === 'rejected' ? codeOf(o.reason) : 'ok')).sort();
  t.ok(codes.includes('ok'), 'one wins');
  t.ok(codes.every((c) => c === 'ok' || c === 'CHECKPOINT_LOCKED'), `the other is refused as locked (${codes.join(', ')})`);
  const winner = filled(0);
  await load({ w: winner }, { checkpointId: 'lock/race2', storageReader: new RedisStorageReader({ redis }) });
  t.ok([7, 8].includes(winner.data[0]!));
  await assertStoreAgrees(t, { redis, expect: { 'lock/race': committed({ w: filled(w.data[0]!) }), 'lock/race2': committed({ w: filled(winner.data[0]!) }) }, exhaustive: false });
});

t.test('delete refuses while a save holds the lock', async (t) => {
  await save({ w: filled(1) }, { checkpointId: 'lock/del', storageWriter: new RedisStorageWriter({ redis }) });
  const redlock = createRedlock([redis]);
  const held = await acquireLock(redlock, new KeySpace().checkpoint('lock/del').lock, 'lock/del', { clients: [redis], ttlMs: 5000, waitMs: 0 });
  const catalog = new CheckpointCatalog({ redis });
  await t.rejects(catalog.delete('lock/del'), { code: 'CHECKPOINT_LOCKED' });
  t.equal((await catalog.get('lock/del')).state, 'committed', 'untouched');
  await held.release();
  await catalog.delete('lock/del');
  await catalog.close();
  await assertStoreAgrees(t, { redis, expect: { 'lock/del': absent }, exhaustive: false });
});

t.test('Redlock quorum: 1 of 3 lock nodes down still locks; 2 of 3 down refuses to start', async (t) => {
  const nodes = await Promise.all([0, 1, 2].map(() => RedisServer.start()));
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  const lockRedis = nodes.map((n) => new Redis({ port: n.port, enableOfflineQueue: false, maxRetriesPerRequest: 1, disableClientInfo: true, retryStrategy: () => 200 }));
  for (const c of lockRedis) c.on('error', () => {});
  await Promise.all(lockRedis.map((c) => (c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r)))));
  t.teardown(() => lockRedis.forEach((c) => c.disconnect()));
  await nodes[0]!.kill();
  await save({ w: filled(9) }, { checkpointId: 'quorum/a', storageWriter: new RedisStorageWriter({ redis, lockRedis }) });
  const w = filled(0);
  await load({ w }, { checkpointId: 'quorum/a', storageReader: new RedisStorageReader({ redis }) });
  t.equal(w.data[0], 9, 'saved with a majority');
  await nodes[1]!.kill();
  const err = await save({ w: filled(10) }, { checkpointId: 'quorum/b', storageWriter: new RedisStorageWriter({ redis, lockRedis }) }).catch((e: unknown) => e);
  t.equal(codeOf(err), 'LOCK_UNAVAILABLE');
  t.same(await redis.keys('*quorum/b*'), [], 'no key of the refused save exists');
  await assertStoreAgrees(t, { redis, expect: { 'quorum/a': committed({ w: filled(9) }), 'quorum/b': absent }, exhaustive: false });
});

t.test('stale coordinator: SIGSTOPped past its lock TTL, a newer save commits; resumed, the old one is fenced', async (t) => {
  const id = 'fence/stale';
  const stale = startFixture('test/fixtures/rank.ts', ['save', server.url, id, '0', '1', `stale-${process.pid}`, '20000'], { SEED: '2', PAUSE_AT: 'finish', PAUSE_MS: '300', LOCK_TTL_MS: '1000' });
  await stale.waitFor('paused-at-finish');
  stale.process.kill('SIGSTOP');
  await new Promise((r) => setTimeout(r, 1600)); // past the 1 s TTL: its lock and lease expire
  const fresh = startFixture('test/fixtures/rank.ts', ['save', server.url, id, '0', '1', `fresh-${process.pid}`, '20000'], { SEED: '3' });
  const freshResult = await fresh.done;
  t.match(freshResult.json, { ok: true }, freshResult.stderr);
  stale.process.kill('SIGCONT');
  const staleResult = await stale.done;
  t.match(staleResult.json, { ok: false, code: 'CHECKPOINT_FAILED', step: 'write', failures: { 0: 'FENCED' } }, staleResult.stdout + staleResult.stderr);
  const loaded = await startFixture('test/fixtures/rank.ts', ['load', server.url, id, '0', '1', `check-${process.pid}`, '20000']).done;
  const loaded1 = loaded.json!;
  t.match(loaded1, { ok: true, seed: 3, wrong: 0 }, 'the newer save is intact, bit for bit');
  const catalog = new CheckpointCatalog({ redis });
  t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] });
  const saves = await redis.smembers(`dcp:ckpt:{${id}}:saves`);
  t.equal(saves.length, 1, 'only the committed save owns data');
  await catalog.close();
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(3)) }, exhaustive: false });
});

t.test('Redlock quorum of 5: 2 nodes down still locks and commits; 3 down refuses before writing', async (t) => {
  const nodes = await Promise.all([0, 1, 2, 3, 4].map(() => RedisServer.start()));
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())));
  const lockRedis = nodes.map((n) => new Redis({ port: n.port, maxRetriesPerRequest: 1, disableClientInfo: true, retryStrategy: () => 200 }));
  for (const c of lockRedis) c.on('error', () => {});
  t.teardown(() => lockRedis.forEach((c) => c.disconnect()));
  await Promise.all(lockRedis.map((c) => (c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r)))));
  await nodes[0]!.kill();
  await nodes[3]!.kill();
  await save({ w: filled(21) }, { checkpointId: 'quorum5/a', storageWriter: new RedisStorageWriter({ redis, lockRedis }) });
  const w = filled(0);
  await load({ w }, { checkpointId: 'quorum5/a', storageReader: new RedisStorageReader({ redis }) });
  t.equal(w.data[500], 21, 'committed with 3 of 5');
  await nodes[4]!.kill();
  const err = await save({ w: filled(22) }, { checkpointId: 'quorum5/a', storageWriter: new RedisStorageWriter({ redis, lockRedis }) }).catch((e: unknown) => e);
  t.equal(codeOf(err), 'LOCK_UNAVAILABLE');
  const again = filled(0);
  await load({ w: again }, { checkpointId: 'quorum5/a', storageReader: new RedisStorageReader({ redis }) });
  t.equal(again.data[500], 21, 'the committed checkpoint is untouched by the refused save');
  await assertStoreAgrees(t, { redis, expect: { 'quorum5/a': committed({ w: filled(21) }) }, exhaustive: false });
});
