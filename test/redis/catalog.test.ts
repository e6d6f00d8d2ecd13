import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed, damaged, incomplete } from '../helpers/invariants.js';

const { redis, catalog } = await serverWithCatalog();

const tensor = (n: number, v = 1) => new Tensor('float32', [n], new Float32Array(n).fill(v));

async function saveOne(id: string, sd = { w: tensor(10) }) {
  return save(sd, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
}

t.test('list pages newest first, filters by prefix, never repeats or skips', async (t) => {
  const ids: string[] = [];
  for (let i = 0; i < 23; i++) {
    const id = `${i % 2 ? 'odd' : 'even'}/ck-${String(i).padStart(2, '0')}`;
    await saveOne(id);
    ids.push(id);
  }
  // Same creation time for several entries: ties must still page correctly.
  await redis.zadd('dcp:catalog', 'XX', 1000, 'even/ck-00', 1000, 'even/ck-02', 1000, 'even/ck-04');
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await catalog.list({ limit: 5, ...(cursor ? { cursor } : {}) });
    seen.push(...page.items.map((i) => i.id));
    cursor = page.nextCursor ?? undefined;
    pages++;
  } while (cursor);
  t.equal(seen.length, 23);
  t.same([...seen].sort(), [...ids].sort(), 'every checkpoint exactly once');
  t.equal(pages, 5, 'no empty page at the end');
  // A full last page ends the listing instead of pointing at an empty one.
  const whole = await catalog.list({ limit: 23 });
  t.equal(whole.items.length, 23);
  t.equal(whole.nextCursor, null, 'a page holding exactly the rest has no next cursor');
  t.not((await catalog.list({ limit: 22 })).nextCursor, null, 'one more left: a cursor');
  t.same(seen.slice(0, 2), ['even/ck-22', 'odd/ck-21'], 'newest first');
  t.same(seen.slice(-3), ['even/ck-04', 'even/ck-02', 'even/ck-00'], 'ties ordered and not lost');
  const odd = await catalog.list({ prefix: 'odd/', limit: 1000 });
  t.equal(odd.items.length, 11);
  t.ok(odd.items.every((i) => i.id.startsWith('odd/')));
  const first = odd.items[0]!;
  t.equal(first.id, 'odd/ck-21', 'newest first');
  t.equal(first.state, 'committed');
  t.equal(first.worldSize, 1);
  t.equal(first.totalBytes, 40);
  t.equal(first.itemCount, 1);
  t.match(first.createdAt, /^\d{4}-\d\d-\d\dT/);
  await t.rejects(catalog.list({ limit: 0 }), { code: 'INVALID_LIMIT' });
  await t.rejects(catalog.list({ cursor: 'garbage' }), { code: 'INVALID_CURSOR' });
});

t.test('get returns summary and full metadata', async (t) => {
  await saveOne('meta/one', { w: tensor(6) });
  const got = await catalog.get('meta/one');
  t.equal(got.state, 'committed');
  const md = got.metadata!.stateDictMetadata.w!;
  t.equal(md.type, 'tensor');
  t.same(md.type === 'tensor' && md.size, [6]);
  await t.rejects(catalog.get('meta/none'), { code: 'CHECKPOINT_NOT_FOUND' });
  await t.rejects(catalog.get('bad id'), { code: 'INVALID_CHECKPOINT_ID' });
});

t.test('validate: clean, wrong length, missing key, corrupted byte (deep only)', async (t) => {
  await saveOne('val/a', { w: tensor(1000, 3) });
  t.same(await catalog.validate('val/a'), { ok: true, problems: [] });
  t.same(await catalog.validate('val/a', { deep: true }), { ok: true, problems: [] });
  const [key] = await redis.keys('dcp:data:val/a:*');
  await redis.setrange(key!, 10, 'Z');
  t.ok((await catalog.validate('val/a')).ok, 'shallow validation cannot see a flipped byte');
  const progress: number[] = [];
  const deep = await catalog.validate('val/a', { deep: true, onProgress: (done) => progress.push(done) });
  t.equal(deep.ok, false);
  t.equal(deep.problems[0]!.kind, 'checksum_mismatch');
  t.equal(deep.problems[0]!.fqn, 'w');
  t.equal(deep.problems[0]!.key, key);
  t.ok(progress.length > 0);
  await redis.append(key!, 'xx');
  t.equal((await catalog.validate('val/a')).problems[0]!.kind, 'wrong_length');
  await redis.del(key!);
  t.equal((await catalog.validate('val/a')).problems[0]!.kind, 'missing_key');
  await redis.set('dcp:ckpt:{val/a}:meta', '{"not":"metadata"');
  t.equal((await catalog.validate('val/a')).problems[0]!.kind, 'metadata_invalid');
  await t.rejects(catalog.get('val/a'), { code: 'METADATA_INVALID' });
  await assertStoreAgrees(t, { redis, expect: { 'val/a': damaged({ w: tensor(1000) }, 'metadata_invalid') }, exhaustive: false });
});

t.test('a failed save is incomplete, found by the catalog, and delete removes every key', async (t) => {
  const before = new Set(await redis.keys('*'));
  const groups = createLocalGroups(2, { timeoutMs: 5000 });
  class FailingWriter extends RedisStorageWriter {
    override async writeData(...args: Parameters<RedisStorageWriter['writeData']>): ReturnType<RedisStorageWriter['writeData']> {
      await super.writeData(...args);
      throw new Error('disk on fire');
    }
  }
  const results = await Promise.allSettled(
    groups.map((group, rank) =>
      save({ [`w${rank}`]: tensor(4) }, { checkpointId: 'fail/x', storageWriter: rank === 1 ? new FailingWriter({ redis }) : new RedisStorageWriter({ redis }), processGroup: group }),
    ),
  );
  t.same(await redis.keys('dcp:data:fail/x:*'), [], 'the failed save dropped its data');
  t.ok(results.every((r) => r.status === 'rejected'));
  const listed = await catalog.list({ state: 'incomplete', prefix: 'fail/' });
  t.same(listed.items.map((i) => i.id), ['fail/x']);
  t.equal((await catalog.get('fail/x')).metadata, null);
  await assertStoreAgrees(t, { redis, expect: { 'fail/x': incomplete }, exhaustive: false });
  await catalog.delete('fail/x');
  const after = (await redis.keys('*')).filter((k) => !before.has(k) && k !== 'dcp:fence');
  t.same(after, [], 'nothing left but the global fence counter');
  t.equal(await catalog.delete('fail/x'), false, 'deleting an id that does not exist resolves false');
  await assertStoreAgrees(t, { redis, expect: { 'fail/x': absent }, exhaustive: false });
});

t.test('delete of a committed checkpoint removes data, control keys and the catalog entry', async (t) => {
  await saveOne('del/a', { w: tensor(3_000_000) });
  await assertStoreAgrees(t, { redis, expect: { 'del/a': committed({ w: tensor(3_000_000) }) }, exhaustive: false });
  t.ok((await redis.keys('dcp:data:del/a:*')).length >= 3);
  t.equal(await catalog.delete('del/a'), true, 'delete resolves true when it removed a checkpoint');
  t.equal(await catalog.delete('del/a'), false, 'a second delete resolves false (idempotent, like Map.delete)');
  t.same(await redis.keys('*del/a*'), []);
  t.equal(await redis.zscore('dcp:catalog', 'del/a'), null);
  await assertStoreAgrees(t, { redis, expect: { 'del/a': absent }, exhaustive: false });
});

t.test('list skips a catalog entry whose checkpoint is gone, and only repair() removes it', async (t) => {
  await redis.zadd('dcp:catalog', Date.now() + 60_000, 'ghost/one');
  await redis.zadd('dcp:catalog', Date.now() + 60_000, 'ghost/two');
  await saveOne('ghost/real');
  const page = await catalog.list({ prefix: 'ghost/' });
  t.same(page.items.map((s) => s.id), ['ghost/real'], 'stale entries not listed');
  t.not(await redis.zscore('dcp:catalog', 'ghost/one'), null, 'listing wrote nothing');
  const { removed } = await catalog.repair();
  t.same(removed.filter((id) => id.startsWith('ghost/')).sort(), ['ghost/one', 'ghost/two'], 'repair names what it removed');
  t.equal(await redis.zscore('dcp:catalog', 'ghost/one'), null, 'entry removed');
  t.equal(await redis.zscore('dcp:catalog', 'ghost/two'), null, 'entry removed');
  t.not(await redis.zscore('dcp:catalog', 'ghost/real'), null, 'a live checkpoint keeps its entry');
  t.same((await catalog.repair()).removed, [], 'nothing left to repair');
  await catalog.delete('ghost/real');
  await assertStoreAgrees(t, { redis, expect: { 'ghost/one': absent }, exhaustive: false });
});
