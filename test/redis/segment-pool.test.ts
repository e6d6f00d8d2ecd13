/**
 * Segment recycling: dropped data goes into a pool with a TTL and later saves write over it.
 * What must hold: recycled checkpoints load bit for bit and keep no TTL; a pooled segment
 * is taken by one save only; an expired pool costs nothing but speed; with recycling off
 * nothing changes; Redis really reuses the memory (page faults of the server).
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
const TTL = 60_000;
const SEGMENT = 256 * 1024 - 64;
const catalog = new CheckpointCatalog({ redis, recycleTtlMs: TTL });
t.teardown(async () => {
  await catalog.close();
  await server.stop();
});

const weights = (n: number, seed: number) => {
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = (i * 2654435761 + seed) | 0;
  return new Tensor('int32', [n], data);
};
const writer = (extra: Partial<ConstructorParameters<typeof RedisStorageWriter>[0]> = {}) => new RedisStorageWriter({ redis, segmentBytes: SEGMENT, recycleTtlMs: TTL, ...extra });
const pooled = async () => (await redis.keys('dcp:pool:*')).sort();
const dataKeys = async (id: string) => (await redis.keys(`dcp:data:${id}:*`)).sort();
const N = 1_000_000; // 4 MB: 15 full segments and a tail

async function loadBack(id: string, n: number): Promise<Tensor> {
  const dest = new Tensor('int32', [n]);
  await load({ w: dest }, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  return dest;
}

t.test('a deleted checkpoint feeds the pool; the next save takes it over, loads bit for bit and keeps no TTL', async (t) => {
  await save({ w: weights(N, 1) }, { checkpointId: 'pool/a', storageWriter: writer() });
  const aKeys = await dataKeys('pool/a');
  t.equal(await catalog.delete('pool/a'), true);
  t.same(await dataKeys('pool/a'), [], 'no data key of the deleted checkpoint remains');
  const inPool = await pooled();
  t.equal(inPool.length, aKeys.length, 'all of them wait in the pool');
  const ttls = await Promise.all(inPool.map((k) => redis.pttl(k)));
  t.ok(ttls.every((ms) => ms > 0 && ms <= TTL), 'pooled segments expire');
  t.equal(await redis.scard('dcp:pool'), aKeys.length);

  const source = weights(N, 2);
  await save({ w: source }, { checkpointId: 'pool/b', storageWriter: writer() });
  const full = Math.floor((N * 4) / SEGMENT);
  t.equal((await pooled()).length, aKeys.length - full, 'the full-size segments were taken; the tail stays pooled');
  const bKeys = await dataKeys('pool/b');
  t.same(await Promise.all(bKeys.map((k) => redis.pttl(k))), bKeys.map(() => -1), 'no data key inherited a TTL');
  t.same(Buffer.from((await loadBack('pool/b', N)).data.buffer), Buffer.from(source.data.buffer), 'bit for bit');
  await assertStoreAgrees(t, { redis, expect: { 'pool/b': committed({ w: source }) } });
  await catalog.delete('pool/b');
  await redis.del('dcp:pool', ...(await pooled()));
});

t.test('overwrite recycles the replaced save; two ranks taking from one pool both load bit for bit', async (t) => {
  await save({ w: weights(N, 3) }, { checkpointId: 'pool/latest', storageWriter: writer() });
  await save({ w: weights(N, 4) }, { checkpointId: 'pool/latest', storageWriter: writer() });
  t.ok((await pooled()).length >= Math.floor((N * 4) / SEGMENT), 'the replaced save went to the pool at commit');
  // Two ranks take from the same pool at once; each gets its own segments.
  const groups = createLocalGroups(2, { timeoutMs: 10_000 });
  const halves = [weights(N, 5), weights(N, 6)];
  await Promise.all(groups.map((group, rank) => save({ [`w${rank}`]: halves[rank]! }, { checkpointId: 'pool/latest', storageWriter: writer(), processGroup: group })));
  const dest = { w0: new Tensor('int32', [N]), w1: new Tensor('int32', [N]) };
  await load(dest, { checkpointId: 'pool/latest', storageReader: new RedisStorageReader({ redis }) });
  t.ok(Buffer.from(dest.w0.data.buffer).equals(Buffer.from(halves[0]!.data.buffer)) && Buffer.from(dest.w1.data.buffer).equals(Buffer.from(halves[1]!.data.buffer)), 'both ranks bit for bit');
  await assertStoreAgrees(t, { redis, expect: { 'pool/latest': committed({ w0: halves[0]!, w1: halves[1]! }) } });
  await catalog.delete('pool/latest');
  await redis.del('dcp:pool', ...(await pooled()));
});

t.test('an expired pool only costs speed: names whose segments are gone are skipped', async (t) => {
  const shortCatalog = new CheckpointCatalog({ redis, recycleTtlMs: 200 });
  t.teardown(() => shortCatalog.close());
  await save({ w: weights(N, 7) }, { checkpointId: 'pool/expiring', storageWriter: writer() });
  await shortCatalog.delete('pool/expiring');
  t.ok((await pooled()).length > 0);
  await new Promise((r) => setTimeout(r, 400));
  t.same(await pooled(), [], 'pooled segments expired');
  const source = weights(N, 8);
  await save({ w: source }, { checkpointId: 'pool/after-expiry', storageWriter: writer() });
  t.same(Buffer.from((await loadBack('pool/after-expiry', N)).data.buffer), Buffer.from(source.data.buffer));
  await assertStoreAgrees(t, { redis, expect: { 'pool/after-expiry': committed({ w: source }) } });
  await catalog.delete('pool/after-expiry');
  await redis.del('dcp:pool', ...(await pooled()));
});

t.test('recycling off (the default) unlinks as before; bad values are refused', async (t) => {
  const plain = new CheckpointCatalog({ redis });
  t.teardown(() => plain.close());
  await save({ w: weights(1000, 9) }, { checkpointId: 'pool/off', storageWriter: new RedisStorageWriter({ redis }) });
  await plain.delete('pool/off');
  t.same(await pooled(), [], 'nothing pooled');
  t.throws(() => new RedisStorageWriter({ redis, recycleTtlMs: -1 }), { code: 'DCP_VALUE_ERROR' });
  t.throws(() => new CheckpointCatalog({ redis, recycleTtlMs: 1.5 }), { code: 'DCP_VALUE_ERROR' });
});

t.test('Redis reuses pooled memory: a recycled save faults in far fewer fresh pages', async (t) => {
  const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))![1]);
  const faults = () => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[7]);
  const big = 32_000_000; // 128 MB: below ~64 MB jemalloc keeps freed pages anyway
  const measure = async (recycle: boolean, seed: number) => {
    const id = `pool/faults-${String(recycle)}`;
    const w = (extra = {}) => new RedisStorageWriter({ redis, recycleTtlMs: recycle ? TTL : 0, ...extra });
    const cat = new CheckpointCatalog({ redis, recycleTtlMs: recycle ? TTL : 0 });
    await save({ w: weights(big, seed) }, { checkpointId: `${id}-old`, storageWriter: w() });
    await cat.delete(`${id}-old`);
    const before = faults();
    await save({ w: weights(big, seed + 1) }, { checkpointId: id, storageWriter: w() });
    const after = faults();
    await cat.delete(id);
    await cat.close();
    await redis.del('dcp:pool', ...(await pooled()));
    return after - before;
  };
  const fresh = await measure(false, 10);
  const recycled = await measure(true, 20);
  t.comment(`redis-server page faults for a 128 MB save (31,250 pages): ${fresh} into new keys, ${recycled} over pooled segments`);
  // With 1 MiB − 64 B segments jemalloc keeps part of the deleted checkpoint's pages (about half here): still far more than recycling.
  t.ok(fresh > (128e6 / 4096) * 0.25, 'new keys fault in fresh pages');
  t.ok(recycled < fresh / 3, 'pooled segments are reused in place');
});

t.test('a writer without the bulk connection does not take from the pool', async (t) => {
  await save({ w: weights(N, 30) }, { checkpointId: 'pool/x', storageWriter: writer() });
  await catalog.delete('pool/x');
  const before = (await pooled()).length;
  const source = weights(N, 31);
  await save({ w: source }, { checkpointId: 'pool/y', storageWriter: writer({ bulkTransport: false }) });
  t.equal((await pooled()).length, before, 'the pool is left alone');
  t.same(Buffer.from((await loadBack('pool/y', N)).data.buffer), Buffer.from(source.data.buffer));
});

t.test('the admin API pools the segments of checkpoints it deletes when configured to', async (t) => {
  const { buildApp } = await import('../../src/server/app.js');
  const app = await buildApp({ redis, recycleTtlMs: TTL });
  t.teardown(() => app.close());
  await save({ w: weights(N, 40) }, { checkpointId: 'pool/api', storageWriter: writer() });
  const keys = await dataKeys('pool/api');
  const before = (await pooled()).length;
  const res = await app.inject({ method: 'DELETE', url: '/checkpoints/pool%2Fapi' });
  t.equal(res.statusCode, 204);
  t.equal((await pooled()).length, before + keys.length, 'its segments wait in the pool');
  t.same(await dataKeys('pool/api'), []);
});
