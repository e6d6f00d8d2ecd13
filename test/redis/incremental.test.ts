/**
 * Incremental saves on a real Redis: only changed pieces are written and stored, shared
 * pieces outlive the checkpoint that wrote them, deletes leave nothing behind, resharded and
 * partial loads read pieces like segments, deep validation names every checkpoint sharing a
 * damaged piece. Every scenario ends with assertStoreAgrees.
 */
import t, { type Test } from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { load } from '../../src/core/load.js';
import { asyncSave } from '../../src/core/async-save.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { DEFAULT_SEGMENT_BYTES, segmentSizes } from '../../src/redis/segment-layout.js';
import { absent, assertStoreAgrees, committed } from '../helpers/invariants.js';
import { pieceId } from '../../src/redis/pieces.js';
import { pieceIdEntries } from '../../src/redis/piece-cache.js';
import { incrementalStateDict, seededTensor } from '../fixtures/incremental-data.js';

const { server, redis, catalog } = await serverWithCatalog();

const writer = (options: { segmentBytes?: number; recycleTtlMs?: number } = {}) => new RedisStorageWriter({ redis, incremental: true, ...options });
const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
const pieceKeys = async () => (await redis.keys('dcp:blob:*')).sort();

async function loadInto(id: string, like: StateDict): Promise<StateDict> {
  const out: StateDict = {};
  for (const [k, v] of Object.entries(like)) out[k] = v instanceof Tensor ? new Tensor(v.dtype, v.shape) : 0;
  await load(out, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  return out;
}

function sameBytes(t: Test, a: StateDict, b: StateDict, what: string): void {
  const diff = Object.keys(b).filter((k) => (b[k] instanceof Tensor ? Buffer.compare(Buffer.from((a[k] as Tensor).bytes), Buffer.from((b[k] as Tensor).bytes)) !== 0 : a[k] !== b[k]));
  t.same(diff, [], what);
}

t.test('save A (64 MiB, 12 tensors), change one tensor, save B incrementally: B adds about the changed bytes; delete A, B loads; delete B, nothing left', async (t) => {
  const rows = 1366;
  const cols = 1024;
  const seeds = Array.from({ length: 12 }, (_, i) => i + 1);
  const a = incrementalStateDict(seeds, rows, cols, 1);
  await save(a, { checkpointId: 'inc/a', storageWriter: writer() });
  const before = await usedMemory();
  const piecesOfA = await pieceKeys();
  const b = incrementalStateDict(seeds.map((s, i) => (i === 5 ? 100 : s)), rows, cols, 2);
  await save(b, { checkpointId: 'inc/b', storageWriter: writer() });
  const grown = (await usedMemory()) - before;
  const changed = rows * cols * 4;
  const metadata = (await redis.strlen('dcp:ckpt:{inc/b}:meta')) + 64 * 1024;
  t.ok(grown <= 1.1 * changed + metadata, `used_memory grew by ${grown} bytes for ${changed} changed (limit ${Math.round(1.1 * changed + metadata)})`);
  const [sa, sb] = [await catalog.get('inc/a'), await catalog.get('inc/b')];
  t.equal(sa.storedBytes, sa.totalBytes, 'A stored everything');
  t.equal(sb.totalBytes, sa.totalBytes, 'B is logically as large as A');
  t.ok(sb.storedBytes >= changed && sb.storedBytes <= changed + 64, `B stored only the changed tensor (+ the step): ${sb.storedBytes}`);
  t.equal((await pieceKeys()).filter((k) => !piecesOfA.includes(k)).length, segmentSizes(changed, DEFAULT_SEGMENT_BYTES).length + 1, 'new pieces: those of the changed tensor (cut like segments) and the step');
  sameBytes(t, await loadInto('inc/b', b), b, 'B loads bit for bit');
  let pieceBytes = 0;
  for (const key of await pieceKeys()) pieceBytes += await redis.strlen(key);
  t.equal((await catalog.usage()).committed.bytes, pieceBytes, 'usage counts the pieces A and B share once');
  t.equal((await catalog.usage({ prefix: 'inc/' })).committed.bytes, sa.storedBytes + sb.storedBytes, 'filtered by id: the bytes each added');

  t.equal(await catalog.delete('inc/a'), true);
  sameBytes(t, await loadInto('inc/b', b), b, 'after deleting A, B still loads bit for bit');
  await assertStoreAgrees(t, { redis, expect: { 'inc/a': absent, 'inc/b': committed(b) } });

  t.equal(await catalog.delete('inc/b'), true);
  t.same(await pieceKeys(), [], 'no piece left');
  t.same(await redis.keys('dcp:data:*'), [], 'no data key left');
  t.equal(await redis.exists('dcp:blobs'), 0, 'no piece counts left');
  await assertStoreAgrees(t, { redis, expect: { 'inc/a': absent, 'inc/b': absent } });
});

t.test('rows 1000-1100 of an embedding change: only the pieces holding them are written', async (t) => {
  const segmentBytes = 64 * 1024 - 64;
  const rows = 20_000;
  const cols = 64;
  const emb = seededTensor(rows, cols, 7);
  await save({ emb }, { checkpointId: 'emb/1', storageWriter: writer({ segmentBytes }) });
  const before = await pieceKeys();
  const changed = new Tensor('float32', [rows, cols], Float32Array.from(emb.data as Float32Array));
  for (let i = 1000 * cols; i < 1101 * cols; i++) (changed.data as Float32Array)[i] += 1;
  const rowBytes = cols * 4;
  const first = Math.floor((1000 * rowBytes) / segmentBytes);
  const last = Math.floor((1101 * rowBytes - 1) / segmentBytes);
  const calls = async () => Number(/cmdstat_set:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  const setsBefore = await calls();
  await save({ emb: changed }, { checkpointId: 'emb/2', storageWriter: writer({ segmentBytes }) });
  const sets = (await calls()) - setsBefore;
  const added = (await pieceKeys()).filter((k) => !before.includes(k));
  t.equal(added.length, last - first + 1, `${added.length} new pieces: the ${last - first + 1} holding rows 1000-1100`);
  t.equal((await catalog.get('emb/2')).storedBytes, (last - first + 1) * segmentBytes, 'stored bytes = those pieces');
  // One SET per new piece, plus the metadata SET of the commit script and the lock's SET.
  t.ok(sets <= added.length + 2, `${sets} SETs for ${added.length} pieces`);
  await assertStoreAgrees(t, { redis, expect: { 'emb/1': committed({ emb }), 'emb/2': committed({ emb: changed }) } });
  await catalog.delete('emb/1');
  await catalog.delete('emb/2');
});

function rowShard(total: number, cols: number, world: number, rank: number, source: Tensor | undefined): ShardedTensor {
  const per = Math.ceil(total / world);
  const start = Math.min(per * rank, total);
  const len = Math.max(0, Math.min(per, total - start));
  const tensor = new Tensor('float32', [len, cols]);
  if (source) tensor.bytes.set(source.bytes.subarray(start * cols * 4, (start + len) * cols * 4));
  return new ShardedTensor([total, cols], 'float32', len ? [{ offsets: [start, 0], tensor }] : []);
}

t.test('2 ranks save incrementally, 3 ranks load with resharding; a partial load reads one tensor', async (t) => {
  const rows = 300;
  const cols = 1000;
  const w = seededTensor(rows, cols, 3);
  const v = seededTensor(10, 10, 4);
  const segmentBytes = 64 * 1024 - 64;
  const runRanks = <T>(world: number, fn: (rank: number, group: ReturnType<typeof createLocalGroups>[number]) => Promise<T>) => {
    const groups = createLocalGroups(world, { timeoutMs: 10_000 });
    return Promise.all(groups.map((g, rank) => fn(rank, g)));
  };
  for (const id of ['rs/1', 'rs/2']) {
    await runRanks(2, (rank, group) => save({ w: rowShard(rows, cols, 2, rank, w), v }, { checkpointId: id, storageWriter: writer({ segmentBytes }), processGroup: group }));
  }
  t.equal((await catalog.get('rs/2')).storedBytes, 0, 'the second save of the same bytes stores nothing');
  const dests = [0, 1, 2].map((rank) => ({ w: rowShard(rows, cols, 3, rank, undefined), v: new Tensor('float32', [10, 10]) }));
  await runRanks(3, (rank, group) => load(dests[rank]!, { checkpointId: 'rs/2', storageReader: new RedisStorageReader({ redis }), processGroup: group }));
  for (const [rank, d] of dests.entries()) {
    const expected = rowShard(rows, cols, 3, rank, w).localShards[0]!.tensor.bytes;
    t.same(Buffer.compare(Buffer.from(d.w.localShards[0]!.tensor.bytes), Buffer.from(expected)), 0, `rank ${rank} of 3: its rows bit for bit`);
    t.same(Buffer.compare(Buffer.from(d.v.bytes), Buffer.from(v.bytes)), 0, `rank ${rank}: v`);
  }
  const partial = { v: new Tensor('float32', [10, 10]) };
  await load(partial, { checkpointId: 'rs/1', storageReader: new RedisStorageReader({ redis }) });
  t.same(Buffer.compare(Buffer.from(partial.v.bytes), Buffer.from(v.bytes)), 0, 'partial load of v alone');
  await catalog.delete('rs/1');
  await assertStoreAgrees(t, { redis, expect: { 'rs/1': absent, 'rs/2': committed({ w, v }) } });
  await catalog.delete('rs/2');
});

t.test('deep validation finds a flipped byte in a shared piece and names every checkpoint referencing it', async (t) => {
  const x = seededTensor(100, 100, 11);
  const y = seededTensor(100, 100, 12);
  await save({ x, y }, { checkpointId: 'dv/a', storageWriter: writer() });
  await save({ x, y: seededTensor(100, 100, 13) }, { checkpointId: 'dv/b', storageWriter: writer() });
  await save({ z: seededTensor(100, 100, 14) }, { checkpointId: 'dv/c', storageWriter: writer() });
  const detail = await catalog.get('dv/a');
  const storage = detail.metadata!.storageData as { items: Record<string, { p: string[] }> };
  const shared = `dcp:blob:${storage.items['["x",[0,0]]']!.p[0]!}`;
  const byte = await redis.getrange(shared, 500, 500);
  await redis.setrange(shared, 500, String.fromCharCode(byte.charCodeAt(0) ^ 1));
  for (const id of ['dv/a', 'dv/b']) {
    const report = await catalog.validate(id, { deep: true });
    t.equal(report.ok, false, `${id}: validation fails`);
    t.same(
      report.problems.map((p) => ({ kind: p.kind, fqn: p.fqn, key: p.key, sharedWith: p.sharedWith })),
      [{ kind: 'checksum_mismatch', fqn: 'x', key: shared, sharedWith: ['dv/a', 'dv/b'] }],
      `${id}: the damaged shared piece, with every checkpoint referencing it`,
    );
  }
  t.same(await catalog.validate('dv/c', { deep: true }), { ok: true, problems: [] }, 'a checkpoint not sharing it is clean');
  const err = await load({ x: new Tensor('float32', [100, 100]), y: new Tensor('float32', [100, 100]) }, { checkpointId: 'dv/b', storageReader: new RedisStorageReader({ redis }) }).catch((e: { failures?: Map<number, { code?: string }> }) => e.failures?.get(0)?.code);
  t.equal(err, 'CHECKSUM_MISMATCH', 'loading B fails with CHECKSUM_MISMATCH');
  for (const id of ['dv/a', 'dv/b', 'dv/c']) await catalog.delete(id);
  await assertStoreAgrees(t, { redis, expect: { 'dv/a': absent, 'dv/b': absent, 'dv/c': absent } });
});

t.test('gc sweeps a stored piece no save holds (a SET that arrived after its save was released) and keeps counted ones', async (t) => {
  const kept = seededTensor(10, 10, 21);
  await save({ kept }, { checkpointId: 'sw/a', storageWriter: writer() });
  const stray = Buffer.from('a piece written after its save was released');
  const strayKey = `dcp:blob:${pieceId(stray)}`;
  await redis.set(strayKey, stray);
  await catalog.gc({ dryRun: true });
  t.equal(await redis.exists(strayKey), 1, 'a dry run sweeps nothing');
  await catalog.gc();
  t.equal(await redis.exists(strayKey), 0, 'the stray piece is gone');
  await assertStoreAgrees(t, { redis, expect: { 'sw/a': committed({ kept }) } });
  await catalog.delete('sw/a');
});

t.test('segment recycling never takes a piece: replaced and deleted incremental saves release pieces, the pool gets none', async (t) => {
  const recycling = new CheckpointCatalog({ redis, recycleTtlMs: 60_000 });
  t.teardown(() => recycling.close());
  const big = seededTensor(512, 1024, 31);
  await save({ big }, { checkpointId: 'rc/full', storageWriter: new RedisStorageWriter({ redis, recycleTtlMs: 60_000 }) });
  await recycling.delete('rc/full'); // the pool now holds segments a save may take over
  const pooled = await redis.smembers('dcp:pool');
  t.ok(pooled.length > 0, `the pool holds ${pooled.length} segments`);
  const next = seededTensor(512, 1024, 32);
  await save({ big }, { checkpointId: 'rc/a', storageWriter: writer({ recycleTtlMs: 60_000 }) });
  await save({ big: next }, { checkpointId: 'rc/a', storageWriter: writer({ recycleTtlMs: 60_000 }) }); // replaces: the first save is dropped
  t.same((await redis.smembers('dcp:pool')).sort(), pooled.sort(), 'an incremental save took no pooled segment and retired no piece');
  t.same((await redis.keys('dcp:pool:*')).filter((k) => k.includes('blob')), [], 'no piece was renamed into the pool');
  await assertStoreAgrees(t, { redis, expect: { 'rc/full': absent, 'rc/a': committed({ big: next }) } });
  await recycling.delete('rc/a');
  t.same(await pieceKeys(), [], 'deleted through a recycling catalog: every piece unlinked, none pooled');
});

t.test('asyncSave with an incremental writer: the worker claims and writes only the changed pieces', async (t) => {
  const asyncWriter = new RedisStorageWriter({ redis: server.url, incremental: true });
  t.teardown(() => asyncWriter.close());
  const first = { p: seededTensor(256, 1024, 41), q: seededTensor(256, 1024, 42) };
  await asyncSave(first, { checkpointId: 'as/1', storageWriter: asyncWriter }).committed;
  const second = { p: first.p, q: seededTensor(256, 1024, 43) };
  await asyncSave(second, { checkpointId: 'as/2', storageWriter: asyncWriter }).committed;
  t.equal((await catalog.get('as/2')).storedBytes, 256 * 1024 * 4, 'the second save stored only q');
  await assertStoreAgrees(t, { redis, expect: { 'as/1': committed({ p: first.p, q: first.q }), 'as/2': committed(second) } });
  await catalog.delete('as/1');
  await catalog.delete('as/2');
});

t.test('a new piece raced for by two ranks of one save, or by two saves, counts in storedBytes once', async (t) => {
  const bytes = 256 * 1024 * 4;
  const same = seededTensor(256, 1024, 77);
  const groups = createLocalGroups(2, { timeoutMs: 10_000 });
  // Two items with the same bytes on two ranks: both ranks claim the same new pieces.
  await Promise.all(groups.map((group, rank) => save(rank === 0 ? { x: same } : { y: same }, { checkpointId: 'race/ranks', storageWriter: writer(), processGroup: group })));
  t.equal((await catalog.get('race/ranks')).storedBytes, bytes, 'two ranks writing the same new pieces: counted once');
  const other = seededTensor(256, 1024, 78);
  await Promise.all(['race/s1', 'race/s2'].map((id) => save({ z: other }, { checkpointId: id, storageWriter: writer() })));
  const [s1, s2] = [await catalog.get('race/s1'), await catalog.get('race/s2')];
  t.equal(s1.storedBytes + s2.storedBytes, bytes, `two saves racing for the same new pieces: ${s1.storedBytes} + ${s2.storedBytes}, counted once`);
  t.equal(Number(await redis.get('dcp:blobs:bytes')), 2 * bytes, 'the piece byte counter agrees');
  await assertStoreAgrees(t, { redis, expect: { 'race/ranks': committed({ x: same, y: same }), 'race/s1': committed({ z: other }), 'race/s2': committed({ z: other }) } });
  for (const id of ['race/ranks', 'race/s1', 'race/s2']) await catalog.delete(id);
});

t.test('unchanged pieces reuse their id by XXH64; a false XXH64 match never stores bytes under a wrong id', async (t) => {
  const w = seededTensor(256, 1024, 91);
  await save({ w }, { checkpointId: 'xx/1', storageWriter: writer() });
  // A false match: every remembered position now names a made-up id with the XXH64 of its real bytes.
  const entries = pieceIdEntries();
  const forged = [...entries].map(([k, e]) => [k, { fast: e.fast, id: `${'0'.repeat(32)}-${e.id.split('-')[1]}` }] as const);
  for (const [k, e] of forged) entries.set(k, e);
  const err = await save({ w }, { checkpointId: 'xx/2', storageWriter: writer() }).then(() => undefined, (e: unknown) => (e as { failures?: Map<number, { code?: string }> }).failures?.get(0) ?? (e as { code?: string }));
  t.equal(err?.code, 'CHECKSUM_MISMATCH', 'the save fails before writing a piece under an id its bytes do not hash to');
  t.same(await redis.keys(`dcp:blob:${'0'.repeat(32)}*`), [], 'nothing stored under the forged ids');
  await save({ w }, { checkpointId: 'xx/2', storageWriter: writer() });
  t.equal((await catalog.get('xx/2')).storedBytes, 0, 'the next save (cache cleared) finds every piece stored');
  await assertStoreAgrees(t, { redis, expect: { 'xx/1': committed({ w }), 'xx/2': committed({ w }) }, exhaustive: false });
  await catalog.delete('xx/1');
  await catalog.delete('xx/2');
});

t.test('pieceIdCache: false hashes every piece with BLAKE3: an XXH64 false match of an unchanged-looking piece cannot make a save reference old bytes', async (t) => {
  const x = seededTensor(256, 1024, 71);
  const y = seededTensor(256, 1024, 72);
  await save({ w: x }, { checkpointId: 'pc/x', storageWriter: writer() });
  const entries = pieceIdEntries();
  const idsOfX = new Map([...entries].map(([k, e]) => [k, e.id]));
  await save({ w: y }, { checkpointId: 'pc/y', storageWriter: writer() });
  // A false match: every position remembers y's XXH64 but x's id (both pieces are stored, so nothing is written or checked).
  const forge = () => idsOfX.forEach((id, k) => entries.has(k) && entries.set(k, { fast: entries.get(k)!.fast, id }));
  forge();
  await save({ w: y }, { checkpointId: 'pc/strict', storageWriter: new RedisStorageWriter({ redis, incremental: true, pieceIdCache: false }) });
  sameBytes(t, await loadInto('pc/strict', { w: y }), { w: y }, 'with pieceIdCache: false the save holds its own bytes');
  forge();
  await save({ w: y }, { checkpointId: 'pc/cached', storageWriter: writer() });
  sameBytes(t, await loadInto('pc/cached', { w: y }), { w: x }, 'with the cache (default), the false match keeps the old bytes: the 2^-64 trade the option turns off');
  await assertStoreAgrees(t, { redis, expect: { 'pc/x': committed({ w: x }), 'pc/y': committed({ w: y }), 'pc/strict': committed({ w: y }), 'pc/cached': committed({ w: x }) }, exhaustive: false });
  for (const id of ['pc/x', 'pc/y', 'pc/strict', 'pc/cached']) await catalog.delete(id);
});
