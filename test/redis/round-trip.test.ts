import t from 'tap';
import { save } from '../../src/core/save.js';
import { load } from '../../src/core/load.js';
import { CheckpointError } from '../../src/core/errors.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { DEFAULT_SEGMENT_BYTES, RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed, damaged } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

function rows(total: number, cols: number, world: number, rank: number, fill: (r: number, c: number) => number): ShardedTensor {
  const per = Math.ceil(total / world);
  const start = Math.min(per * rank, total);
  const len = Math.max(0, Math.min(per, total - start));
  const data = Float32Array.from({ length: len * cols }, (_, i) => fill(start + Math.floor(i / cols), i % cols));
  return new ShardedTensor([total, cols], 'float32', len ? [{ offsets: [start, 0], tensor: new Tensor('float32', [len, cols], data) }] : []);
}

async function ranks<T>(world: number, fn: (rank: number, group: ReturnType<typeof createLocalGroups>[number]) => Promise<T>) {
  const groups = createLocalGroups(world, { timeoutMs: 10_000 });
  return Promise.allSettled(groups.map((g, rank) => fn(rank, g)));
}

const value = (r: number, c: number) => r * 1000 + c;

t.test('4 ranks save, 3 ranks load with resharding; small items packed, large split', async (t) => {
  const id = 'rt/step-1';
  const saved = await ranks(4, (rank, group) =>
    save(
      { model: { w: rows(100, 300, 4, rank, value), small: new Tensor('int32', [3], Int32Array.from([rank, 2, 3])) }, step: 5, blob: Uint8Array.from([1, 2, 3]) },
      { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, segmentBytes: 16_000 }), processGroup: group },
    ),
  );
  t.same(saved.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'], String(saved.find((r) => r.status === 'rejected') && (saved.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason));
  const dests = [0, 1, 2].map((rank) => ({ model: { w: rows(100, 300, 3, rank, () => -1), small: new Tensor('int32', [3]) }, step: 0, blob: new Uint8Array() }) as StateDict);
  const loaded = await ranks(3, (rank, group) => load(dests[rank]!, { checkpointId: id, storageReader: new RedisStorageReader({ redis }), processGroup: group }));
  t.same(loaded.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled'], String((loaded.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined)?.reason));
  for (const sd of dests) {
    const w = (sd.model as StateDict).w as ShardedTensor;
    const shard = w.localShards[0]!;
    const [r0] = shard.offsets;
    const expected = Float32Array.from({ length: shard.tensor.numel }, (_, i) => value(r0! + Math.floor(i / 300), i % 300));
    t.same(Buffer.from((shard.tensor.data as Float32Array).buffer), Buffer.from(expected.buffer), 'every element');
    t.equal(sd.step, 5);
    t.same(Array.from(sd.blob as Uint8Array), [1, 2, 3]);
  }
  const keys = await redis.keys('dcp:data:*');
  t.ok(keys.length >= 8, `data spread over ${keys.length} segments`);
});

t.test('column-wise load of row-saved data fetches ranges across segments', async (t) => {
  const id = 'rt/cols';
  await ranks(2, (rank, group) => save({ w: rows(64, 64, 2, rank, value) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, segmentBytes: 1000 }), processGroup: group }));
  const cols = [0, 1].map((rank) => new ShardedTensor([64, 64], 'float32', [{ offsets: [0, rank * 32], tensor: new Tensor('float32', [64, 32]) }]));
  await ranks(2, (rank, group) => load({ w: cols[rank]! }, { checkpointId: id, storageReader: new RedisStorageReader({ redis }), processGroup: group }));
  const got = cols[1]!.localShards[0]!.tensor.data as Float32Array;
  t.equal(got[0], value(0, 32));
  t.equal(got[32 * 63 + 31], value(63, 63));
  t.ok(Array.from(got).every((v, i) => v === value(Math.floor(i / 32), 32 + (i % 32))), 'all elements');
});

t.test('a corrupted byte fails the load with the FQN and key', async (t) => {
  const id = 'rt/corrupt';
  await save({ w: new Tensor('float64', [1000], Float64Array.from({ length: 1000 }, (_, i) => i)) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const [key] = await redis.keys(`dcp:data:${id}:*`);
  await redis.setrange(key!, 100, 'X');
  const err = await load({ w: new Tensor('float64', [1000]) }, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) }).catch((e: unknown) => e);
  t.ok(err instanceof CheckpointError);
  const cause = (err as CheckpointError).failures.get(0) as Error & { code: string };
  t.equal(cause.code, 'CHECKSUM_MISMATCH');
  t.match(cause.message, /"w"/);
  t.match(cause.message, key!);
  // Still listed committed (nothing told the library), found by deep validation, its data still collectable.
  await assertStoreAgrees(t, { redis, expect: { [id]: damaged({ w: new Tensor('float64', [1000]) }, 'checksum_mismatch') }, exhaustive: false });
});

t.test('parts are verified on every read path (receive buffers, straight into the tensor, ioredis): flipped, truncated and missing segments fail', async (t) => {
  const id = 'rt/direct';
  const n = 300_000; // 1.2 MB over 64 KiB segments: every group is one whole part
  const source = Int32Array.from({ length: n }, (_, i) => i * 7);
  await save({ w: new Tensor('int32', [n], source) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, segmentBytes: 64 * 1024 }) });
  const keys = (await redis.keys(`dcp:data:${id}:*`)).sort((a, b) => Number(a.split(':').at(-1)) - Number(b.split(':').at(-1)));
  t.ok(keys.length > 10, `${keys.length} segments`);
  // Three read paths: bulk into reused receive buffers (the default), bulk straight into the tensor, ioredis.
  const modes = [
    { bulkTransport: true, readIntoTensors: false },
    { bulkTransport: true, readIntoTensors: true },
    { bulkTransport: false, readIntoTensors: false },
  ];
  const SENTINEL = -1;
  const loadCode = async (mode: (typeof modes)[number]) => {
    const dest = new Tensor('int32', [n], new Int32Array(n).fill(SENTINEL));
    const err = await load({ w: dest }, { checkpointId: id, storageReader: new RedisStorageReader({ redis, ...mode }) }).then(() => undefined, (e: unknown) => e as CheckpointError);
    return { dest, code: (err?.failures.get(0) as { code?: string } | undefined)?.code, message: err?.failures.get(0)?.message ?? '' };
  };
  for (const mode of modes) {
    const ok = await loadCode(mode);
    t.equal(ok.code, undefined, `clean load (${JSON.stringify(mode)})`);
    t.ok(Buffer.from(ok.dest.data.buffer).equals(Buffer.from(source.buffer)), `bit for bit (${JSON.stringify(mode)})`);
  }
  const middle = keys[5]!;
  const original = (await redis.getBuffer(middle))!;
  await redis.setrange(middle, 1000, 'Z');
  for (const mode of modes) {
    const r = await loadCode(mode);
    t.equal(r.code, 'CHECKSUM_MISMATCH', `flipped byte (${JSON.stringify(mode)})`);
    t.match(r.message, middle);
    // Verified before it is applied: the damaged part never reaches the tensor (unless the kernel writes it there).
    if (!mode.readIntoTensors) t.ok(r.dest.data.subarray((5 * 64 * 1024) / 4, (6 * 64 * 1024) / 4).every((v) => v === SENTINEL), `the damaged segment's bytes were not applied (${JSON.stringify(mode)})`);
  }
  const shape = { w: new Tensor('int32', [n]) };
  await assertStoreAgrees(t, { redis, expect: { [id]: damaged(shape, 'checksum_mismatch') }, exhaustive: false });
  await redis.set(middle, original.subarray(0, original.byteLength - 10));
  for (const mode of modes) t.equal((await loadCode(mode)).code, 'DATA_MISSING', `truncated segment (${JSON.stringify(mode)})`);
  await assertStoreAgrees(t, { redis, expect: { [id]: damaged(shape, 'wrong_length') }, exhaustive: false });
  await redis.del(middle);
  for (const mode of modes) t.equal((await loadCode(mode)).code, 'DATA_MISSING', `deleted segment (${JSON.stringify(mode)})`);
  await assertStoreAgrees(t, { redis, expect: { [id]: damaged(shape, 'missing_key') }, exhaustive: false });
  await redis.set(middle, original);
  t.equal((await loadCode(modes[0]!)).code, undefined, 'restored, it loads again');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w: new Tensor('int32', [n], source) }) }, exhaustive: false });
});

t.test('overwrite keeps the old checkpoint until the new one commits, then removes its data', async (t) => {
  const id = 'rt/over';
  await save({ w: new Tensor('int32', [4], Int32Array.from([1, 1, 1, 1])) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const before = await redis.keys(`dcp:data:${id}:*`);
  await save({ w: new Tensor('int32', [4], Int32Array.from([2, 2, 2, 2])) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const after = await redis.keys(`dcp:data:${id}:*`);
  t.equal(after.length, before.length);
  t.notSame(after, before, 'old data keys replaced');
  const w = new Tensor('int32', [4]);
  await load({ w }, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  t.same(Array.from(w.data), [2, 2, 2, 2]);
  const err = await save({ w }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, overwrite: false }) }).catch((e: unknown) => e);
  t.ok(err instanceof CheckpointError && /Checkpoint already exists/.test(err.message));
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w: new Tensor('int32', [4], Int32Array.from([2, 2, 2, 2])) }) }, exhaustive: false });
});

t.test('ids with bad characters are rejected before any key is touched', async (t) => {
  const before = (await redis.keys('*')).sort();
  for (const id of ['a b', 'x*', '{tag}', '../up', '/abs', 'end/', 'a'.repeat(513), '']) {
    t.throws(() => new RedisStorageWriter({ redis, checkpointId: id }), { code: 'INVALID_CHECKPOINT_ID' }, JSON.stringify(id).slice(0, 20));
  }
  t.same((await redis.keys('*')).sort(), before);
});


t.test('segments are full except the last per rank: power-of-two tensors cost no allocator rounding', async (t) => {
  const MiB = 1024 * 1024;
  const sd: StateDict = { tiny: new Tensor('uint8', [100]), blob: Uint8Array.from([9, 9]) };
  for (let i = 0; i < 5; i++) sd[`two${i}`] = new Tensor('float32', [(2 * MiB) / 4], new Float32Array((2 * MiB) / 4).fill(i));
  sd.one = new Tensor('uint8', [MiB]);
  const id = 'rt/mem';
  await save(sd, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const keys = (await redis.keys(`dcp:data:${id}:*`)).sort((a, b) => Number(a.split(':').at(-1)) - Number(b.split(':').at(-1)));
  const lengths = await Promise.all(keys.map((k) => redis.strlen(k)));
  t.same(lengths.slice(0, 2), [DEFAULT_SEGMENT_BYTES, DEFAULT_SEGMENT_BYTES], `full segments first: ${lengths.join(', ')}`);
  t.ok(lengths.slice(2, -1).every((n) => Number.isInteger(Math.log2(n + 64))), 'then tail pieces of 2^k − 64 bytes');
  const payload = 11 * MiB + 100 + 2;
  t.equal(lengths.reduce((a, b) => a + b, 0), payload);
  const usage = (await Promise.all(keys.map((k) => redis.memory('USAGE', k)))).reduce<number>((a, b) => a + Number(b ?? 0), 0);
  t.ok(usage / payload < 1.02, `Redis memory ${usage} for ${payload} payload bytes (${((usage / payload - 1) * 100).toFixed(2)} % over)`);
  const back: StateDict = { tiny: new Tensor('uint8', [100]), blob: new Uint8Array(), one: new Tensor('uint8', [MiB]) };
  for (let i = 0; i < 5; i++) back[`two${i}`] = new Tensor('float32', [(2 * MiB) / 4]);
  await load(back, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) });
  t.ok([0, 1, 2, 3, 4].every((i) => (back[`two${i}`] as Tensor).data.every((v) => v === i)), 'tensors spanning segments load back');
  t.same(Array.from(back.blob as Uint8Array), [9, 9]);
});

t.test('segmentSizes: covers the stream exactly, never over the segment size, few tail pieces', async (t) => {
  const { segmentSizes } = await import('../../src/redis/writer.js');
  const fc = (await import('fast-check')).default;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 64 * 1024 * 1024 }), fc.integer({ min: 1000, max: 8 * 1024 * 1024 }), (total, segment) => {
      const sizes = segmentSizes(total, segment);
      const sum = sizes.reduce((a, b) => a + b, 0);
      const tail = sizes.filter((s) => s !== segment).length;
      return sum === total && sizes.every((s) => s > 0 && s <= segment) && tail <= 10;
    }),
  );
  t.same(segmentSizes(0, 100), []);
  t.same(segmentSizes(4 * 1024 * 1024, 4 * 1024 * 1024 - 64), [4 * 1024 * 1024 - 64, 64]);
});

t.test('many small items load with a few GETRANGEs (neighbouring parts are fetched together)', async (t) => {
  const sd: StateDict = {};
  for (let i = 0; i < 500; i++) sd[`p${i}`] = new Tensor('int32', [16], new Int32Array(16).fill(i));
  await save(sd, { checkpointId: 'rt/many', storageWriter: new RedisStorageWriter({ redis }) });
  const back: StateDict = {};
  for (let i = 0; i < 500; i++) back[`p${i}`] = new Tensor('int32', [16]);
  await redis.config('RESETSTAT');
  await load(back, { checkpointId: 'rt/many', storageReader: new RedisStorageReader({ redis }) });
  const calls = Number(/cmdstat_getrange:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  t.ok(calls >= 1 && calls <= 2, `${calls} GETRANGE for 500 items`);
  t.ok([...Array(500).keys()].every((i) => (back[`p${i}`] as Tensor).data.every((v) => v === i)), 'every item');
});
