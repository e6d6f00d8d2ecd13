/**
 * Incremental saves across rank processes (test/fixtures/rank.ts with INCREMENTAL=1, one
 * RedisProcessGroup): 2 ranks save, 2 ranks save the same bytes again (nothing stored),
 * 3 ranks load with resharding bit for bit; a follower failing in writeData leaves an
 * incomplete checkpoint whose claims were released; a rank SIGKILLed while writing its pieces
 * leaves the previous commit whole and no piece behind. Ends with assertStoreAgrees.
 */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { allDone, startRanks } from '../helpers/child.js';
import { absent, assertStoreAgrees, committed, incomplete, rankFixtureReference } from '../helpers/invariants.js';

const { server, redis, catalog } = await serverWithCatalog();

const TIMEOUT = 30_000;
const env = (extra: NodeJS.ProcessEnv = {}) => () => ({ INCREMENTAL: '1', SEED: '1', ...extra });

t.test('2 rank processes save incrementally twice (the second stores nothing), 3 load with resharding', async (t) => {
  for (const id of ['pi/1', 'pi/2']) {
    const results = await allDone(startRanks(server.url, 'save', id, 2, env(), TIMEOUT));
    t.same(results.map((r) => r.json?.ok), [true, true], `${id}: both ranks saved (${results.map((r) => r.stderr.slice(0, 200)).join(' | ')})`);
  }
  const [one, two] = [await catalog.get('pi/1'), await catalog.get('pi/2')];
  t.equal(one.storedBytes, one.totalBytes, 'the first save stored everything');
  t.equal(two.storedBytes, 0, 'the second save of the same bytes stored nothing');
  const loads = await allDone(startRanks(server.url, 'load', 'pi/2', 3, () => ({}), TIMEOUT));
  t.same(loads.map((r) => [r.json?.ok, r.json?.seed, r.json?.wrong]), [[true, 1, 0], [true, 1, 0], [true, 1, 0]], '3 ranks loaded their rows bit for bit');
  await assertStoreAgrees(t, { redis, expect: { 'pi/1': committed(rankFixtureReference(1)), 'pi/2': committed(rankFixtureReference(1)) } });
  await catalog.delete('pi/1');
  await catalog.delete('pi/2');
});

t.test('a follower failing in writeData: every rank fails, the claims of the save are released', async (t) => {
  const results = await allDone(startRanks(server.url, 'save', 'pi/3', 2, env({ SEED: '3', FAIL_AT: '1:writeData' }), TIMEOUT));
  t.same(results.map((r) => r.json?.ok), [false, false], 'both ranks report the failure');
  t.equal(await redis.scard(`dcp:ckpt:{pi/3}:pieces:${(await redis.smembers('dcp:ckpt:{pi/3}:saves'))[0] ?? 'none'}`), 0, 'no claim left');
  await assertStoreAgrees(t, { redis, expect: { 'pi/1': absent, 'pi/2': absent, 'pi/3': incomplete } });
  t.equal(await catalog.delete('pi/3'), true);
  t.same(await redis.keys('dcp:blob*'), [], 'no piece left');
});

t.test('a rank SIGKILLed while its pieces are being written (2 ranks, incremental overwrite): the previous commit stays whole, nothing leaks', async (t) => {
  const id = 'pi/killed';
  const first = await allDone(startRanks(server.url, 'save', id, 2, env({ SEED: '7' }), TIMEOUT));
  t.same(first.map((r) => r.json?.ok), [true, true], 'the first save committed');
  const piecesBefore = (await redis.keys('dcp:blob:*')).length;
  for (const after of [1, 3, 6]) {
    // 32 MiB of distinct bytes per rank: 8 pieces of 4 MiB − 64 B; rank 1 dies once `after` of its SETs were acknowledged, the next ones in flight.
    const children = startRanks(server.url, 'save', id, 2, (rank) => ({ INCREMENTAL: '1', SEED: '8', EXTRA_BYTES: String(32 << 20), EXTRA_SEED: String(after), ...(rank === 1 ? { KILL_AFTER_SETS: String(after) } : {}) }), 2500);
    const killed = await children[1]!.done;
    // Before the coordinator's timeout aborts the save and releases its claims: what both ranks had written.
    const stored = (await redis.keys('dcp:blob:*')).length - piecesBefore;
    t.ok(stored >= after, `${stored} new pieces stored when rank 1 died after ${after} acknowledged SETs`);
    const survivor = await children[0]!.done;
    t.equal(killed.signal, 'SIGKILL', `rank 1 killed mid-write, after ${after} of its piece SETs`);
    t.match(survivor.json, { ok: false, code: 'CHECKPOINT_FAILED' }, 'rank 0 fails');
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(7)) }, exhaustive: false });
  }
  t.equal((await redis.keys('dcp:blob:*')).length, piecesBefore, "the dead saves' pieces were all released");
  t.equal(await catalog.delete(id), true);
  t.same(await redis.keys('dcp:blob*'), [], 'no piece left');
});
