/**
 * asyncSave in one process (issue 11): staging reuse, the worker-thread upload against a
 * real Redis, the same-thread fallback, one save in flight, pending failures, a crashing
 * worker and Redis going down before and during the upload. Multi-process scenarios
 * (2 ranks, busy main thread, killed rank, exiting caller) are in
 * test/group/async-save-processes.test.ts.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { asyncSave, defaultStagerOf } from '../../src/core/async-save.js';
import { CheckpointError, type DcpError } from '../../src/core/errors.js';
import { waitForPendingSave } from '../../src/core/in-flight.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { DefaultStager } from '../../src/core/staging.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { uploadThread } from '../../src/async/upload-thread.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { faultyWriter } from '../fixtures/async-writer.js';
import { absent, assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { MemoryStorageReader, MemoryStorageWriter, MemoryStore } from '../helpers/memory-storage.js';
import { RedisServer } from '../helpers/redis-server.js';

const ramp = (n: number, seed: number) => new Tensor('float32', [n], Float32Array.from({ length: n }, (_, i) => seed * 1000 + i));
const stateDict = (seed: number) => ({ w: ramp(64 * 1024, seed), layers: [{ b: ramp(100, seed + 1) }], blob: new Uint8Array([seed, 2, 3]), meta: { step: seed, tag: 'async' } });
const copyOf = (sd: ReturnType<typeof stateDict>) => ({ w: new Tensor('float32', [sd.w.numel], sd.w.data.slice() as Float32Array), layers: [{ b: new Tensor('float32', [100], sd.layers[0]!.b.data.slice() as Float32Array) }], blob: sd.blob.slice(), meta: { ...sd.meta } });
function mutate(sd: ReturnType<typeof stateDict>): void {
  sd.w.bytes.fill(0xee);
  sd.layers[0]!.b.bytes.fill(0xee);
  sd.blob.fill(0xee);
  sd.meta.step = -1;
}

/** A writer on the test server, closed with the test. */
function redisWriter(t: { teardown(fn: () => unknown): void }): RedisStorageWriter {
  const writer = new RedisStorageWriter({ redis: server.url });
  t.teardown(() => writer.close());
  return writer;
}

let unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

let server: RedisServer;
let redis: Redis;
t.before(async () => {
  server = await RedisServer.start();
  redis = server.client();
});
t.teardown(() => server.stop());

t.test('DefaultStager: copies, and reuses its buffers for a same-shaped state dict', async (t) => {
  const stager = new DefaultStager();
  const sd = { a: ramp(1000, 1), s: new ShardedTensor([4, 2], 'int32', [{ offsets: [2, 0], tensor: new Tensor('int32', [2, 2], Int32Array.from([1, 2, 3, 4])) }]), b: new Uint8Array([9]), j: { x: [1, 'two'] } };
  const first = await stager.stage(sd);
  const buffers = stager.buffers;
  t.equal(stager.allocations, 1, 'one SharedArrayBuffer for the whole state dict');
  t.ok((first.a as Tensor).data.buffer instanceof SharedArrayBuffer, 'tensors are staged into shared memory');
  sd.a.data[0] = 42;
  sd.b[0] = 0;
  (sd.j.x as unknown[])[0] = 7;
  t.equal((first.a as Tensor).data[0], 1000, 'the staged tensor does not see later writes');
  t.same(first.b, new Uint8Array([9]));
  t.same(first.j, { x: [1, 'two'] }, 'JSON values are copied too');
  const second = await stager.stage(sd);
  t.equal(stager.allocations, 1, 'the second save of the same shapes allocates nothing');
  t.ok(stager.buffers.length === buffers.length && stager.buffers.every((b, i) => b === buffers[i]), 'the same buffers');
  t.equal((second.a as Tensor).data[0], 42, 'restaged with the new values');
  t.same(((second.s as ShardedTensor).localShards[0]!.tensor.data as Int32Array)[3], 4);
  await stager.stage({ ...sd, a: ramp(2000, 1) });
  t.equal(stager.allocations, 2, 'another shape replaces the buffers');
  await stager.close();
  t.equal(stager.stagedBytes, 0);
});

t.test('worker upload: the caller mutates after staged, the checkpoint holds the pre-mutation bytes; the second save reuses the staging buffers', async (t) => {
  const writer = new RedisStorageWriter({ redis: server.url });
  t.teardown(() => writer.close());
  const sd = stateDict(1);
  const expected = copyOf(sd);
  const first = asyncSave(sd, { checkpointId: 'async/one', storageWriter: writer });
  await first.staged;
  mutate(sd);
  const metadata = await first.committed;
  t.ok(metadata.stateDictMetadata.w, 'committed resolves to the metadata');
  const stager = defaultStagerOf({});
  const buffers = stager.buffers;
  t.equal(stager.allocations, 1);

  const sd2 = stateDict(2);
  const second = asyncSave(sd2, { checkpointId: 'async/two', storageWriter: writer });
  await second.staged;
  t.equal(stager.allocations, 1, 'no allocation for the second save');
  t.ok(stager.buffers.every((b, i) => b === buffers[i]), 'staged into the same SharedArrayBuffers');
  await second.committed;
  await assertStoreAgrees(t, { redis, expect: { 'async/one': committed(expected), 'async/two': committed(copyOf(stateDict(2))) } });
});

t.test('a process group that cannot cross threads: the upload runs on the caller thread, with one warning', async (t) => {
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  t.teardown(() => process.off('warning', onWarning));
  const store = new MemoryStore();
  const groups = createLocalGroups(2);
  const sds = [stateDict(3), stateDict(3)];
  const responses = groups.map((group, rank) => asyncSave(sds[rank]!, { storageWriter: new MemoryStorageWriter(store), processGroup: group }));
  await Promise.all(responses.map((r) => r.staged));
  sds.forEach(mutate);
  await Promise.all(responses.map((r) => r.committed));
  await new Promise((r) => setImmediate(r));
  const ours = warnings.filter((w) => (w as Error & { code?: string }).code === 'DCP_ASYNC_SAME_THREAD');
  t.equal(ours.length, 1, 'one warning');
  t.match(ours[0]!.message, /asyncSave uploads on the caller's thread: the storage writer \(MemoryStorageWriter\) has no workerRecipe\(\)/);
  const dest = { w: new Tensor('float32', [64 * 1024]), layers: [{ b: new Tensor('float32', [100]) }], blob: new Uint8Array(0), meta: { step: 0, tag: '' } };
  await load(dest, { storageReader: new MemoryStorageReader(store) });
  t.same(dest.w.data, stateDict(3).w.data, 'pre-mutation values');
  t.same(dest.meta, { step: 3, tag: 'async' });
});

t.test('staging failing on one in-process rank: the other fails at once with its error (same-thread path)', async (t) => {
  const groups = createLocalGroups(2, { timeoutMs: 60_000 });
  const store = new MemoryStore();
  const responses = groups.map((group, rank) => asyncSave(rank === 1 ? { ...stateDict(1), bad: Symbol('x') as unknown as number } : stateDict(1), { storageWriter: new MemoryStorageWriter(store), processGroup: group }));
  await t.rejects(responses[1]!.staged, { code: 'UNSUPPORTED_VALUE' });
  const err = (await responses[0]!.committed.then(() => undefined, (e: unknown) => e)) as CheckpointError;
  t.ok(err instanceof CheckpointError && (err.failures.get(1) as DcpError).code === 'UNSUPPORTED_VALUE', `rank 0 fails with rank 1's error (${err?.message})`);
  await t.rejects(responses[1]!.committed, { code: 'UNSUPPORTED_VALUE' });
  t.equal(store.metadataJson, undefined, 'nothing committed');
});

t.test('one in flight: a second asyncSave (and a save) through the same writer waits for the first to commit', async (t) => {
  const writer = faultyWriter({ redis: server.url }, { pauseMs: 300 });
  t.teardown(() => writer.close());
  const events: string[] = [];
  const a = asyncSave(stateDict(4), { checkpointId: 'order/a', storageWriter: writer });
  await a.staged;
  void a.committed.then(() => events.push('a committed'));
  const b = asyncSave(stateDict(5), { checkpointId: 'order/b', storageWriter: writer });
  void b.staged.then(() => events.push('b staged'));
  const other = new RedisStorageWriter({ redis: server.url });
  t.teardown(() => other.close());
  const c = save(stateDict(6), { checkpointId: 'order/c', storageWriter: other }).then(() => events.push('unrelated save committed'));
  await b.committed;
  events.push('b committed');
  await c;
  const sync = save(stateDict(7), { checkpointId: 'order/d', storageWriter: writer }).then(() => events.push('d saved'));
  const e = asyncSave(stateDict(8), { checkpointId: 'order/e', storageWriter: writer });
  void e.committed.then(() => events.push('e committed'));
  await Promise.all([sync, e.committed]);
  t.same(
    events.filter((e) => e !== 'unrelated save committed'),
    ['a committed', 'b staged', 'b committed', 'd saved', 'e committed'],
    'each save through the writer starts after the previous one is done, in call order',
  );
  t.equal(defaultStagerOf({}).allocations, 1, 'one staged copy all along (the same buffers)');
  await assertStoreAgrees(t, {
    redis,
    exhaustive: false,
    expect: Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((k, i) => [`order/${k}`, committed(copyOf(stateDict(4 + i)))])),
  });
});

t.test('a failed background save: no unhandled rejection; the next call rejects with it as cause; waitForPendingSave reports it once', async (t) => {
  unhandled = [];
  await save(stateDict(1), { checkpointId: 'fail/exists', storageWriter: redisWriter(t) });
  const writer = new RedisStorageWriter({ redis: server.url, overwrite: false });
  t.teardown(() => writer.close());
  const failing = asyncSave(stateDict(2), { checkpointId: 'fail/exists', storageWriter: writer });
  await failing.staged; // the caller awaits only staged
  await new Promise((r) => setTimeout(r, 200));
  const next = asyncSave(stateDict(3), { checkpointId: 'fail/next', storageWriter: writer });
  const err = (await next.committed.then(() => undefined, (e: unknown) => e)) as DcpError;
  t.equal(err.code, 'PREVIOUS_SAVE_FAILED');
  t.ok(err.cause instanceof CheckpointError && (err.cause.failures.get(0) as DcpError).code === 'CHECKPOINT_EXISTS', 'cause: the earlier failure (CHECKPOINT_EXISTS)');
  t.equal(((await next.staged.then(() => undefined, (e: unknown) => e)) as DcpError).code, 'PREVIOUS_SAVE_FAILED', 'staged rejects too');
  const third = asyncSave(stateDict(3), { checkpointId: 'fail/next', storageWriter: writer });
  await third.committed;
  t.pass('reported once: the call after it works');

  asyncSave(stateDict(2), { checkpointId: 'fail/exists', storageWriter: writer });
  const waited = (await waitForPendingSave().then(() => undefined, (e: unknown) => e)) as DcpError;
  t.equal(waited?.code, 'CHECKPOINT_FAILED', 'waitForPendingSave rejects with the failure');
  await waitForPendingSave();
  t.pass('and only once');

  const seen = asyncSave(stateDict(2), { checkpointId: 'fail/exists', storageWriter: writer });
  await t.rejects(seen.committed, { code: 'CHECKPOINT_FAILED' }, 'a caller awaiting committed sees the failure');
  await waitForPendingSave({ storageWriter: writer });
  t.pass('a failure the caller saw is not reported again');
  await new Promise((r) => setTimeout(r, 100));
  t.same(unhandled, [], 'no unhandled rejection');
  await assertStoreAgrees(t, { redis, exhaustive: false, expect: { 'fail/exists': committed(copyOf(stateDict(1))), 'fail/next': committed(copyOf(stateDict(3))) } });
});

for (const crash of ['throw', 'exit', 'terminate'] as const) {
  t.test(`the upload worker crashing (${crash}): committed rejects with ASYNC_WORKER_FAILED, the checkpoint is incomplete, the next save gets a new worker`, async (t) => {
    const id = `crash/${crash}`;
    const writer = faultyWriter({ redis: server.url, lockTtlMs: 2000 }, crash === 'terminate' ? { pauseMs: 60_000 } : { crash });
    const response = asyncSave(stateDict(1), { checkpointId: id, storageWriter: writer });
    await response.staged;
    if (crash === 'terminate') {
      await waitForState(id, 'writing');
      await uploadThread.terminate();
    }
    await t.rejects(response.committed, { code: 'ASYNC_WORKER_FAILED' });
    await assertStoreAgrees(t, { redis, exhaustive: false, expect: { [id]: incomplete } });
    await asyncSave(stateDict(2), { checkpointId: `${id}-after`, storageWriter: redisWriter(t) }).committed;
    await assertStoreAgrees(t, { redis, exhaustive: false, expect: { [id]: incomplete, [`${id}-after`]: committed(copyOf(stateDict(2))) } });
  });
}

async function waitForState(id: string, state: string, r: Redis = redis): Promise<void> {
  const catalog = new CheckpointCatalog({ redis: r });
  try {
    for (;;) {
      const found = (await catalog.list({ limit: 1000 })).items.find((i) => i.id === id);
      if (found?.state === state) return;
      await new Promise((res) => setTimeout(res, 20));
    }
  } finally {
    await catalog.close();
  }
}

t.test('Redis down while staging: staged resolves (staging needs no Redis), committed rejects, nothing is written', async (t) => {
  const down = await RedisServer.start();
  const url = down.url;
  await down.stop(true);
  const response = asyncSave(stateDict(1), { checkpointId: 'down/staging', storageWriter: new RedisStorageWriter({ redis: url, lockTtlMs: 1000 }) });
  await response.staged;
  const err = (await response.committed.then(() => undefined, (e: unknown) => e)) as DcpError;
  t.equal(err?.code, 'CHECKPOINT_FAILED', `committed rejects (${err?.message})`);
  const again = await RedisServer.start({ port: down.port, dir: down.dir });
  t.teardown(() => again.stop());
  await assertStoreAgrees(t, { redis: again.client(), expect: { 'down/staging': absent } });
});

t.test('Redis down during the upload: committed rejects; restarted from its AOF the save is incomplete', async (t) => {
  const aof = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  const client = aof.client();
  t.teardown(() => client.disconnect());
  const response = asyncSave(stateDict(1), { checkpointId: 'down/upload', storageWriter: faultyWriter({ redis: aof.url, lockTtlMs: 1500 }, { pauseMs: 1500 }) });
  await response.staged;
  await waitForState('down/upload', 'writing', client);
  await aof.kill();
  await t.rejects(response.committed, { code: 'CHECKPOINT_FAILED' });
  const again = await RedisServer.start({ port: aof.port, dir: aof.dir, args: ['--appendonly', 'yes'] });
  t.teardown(() => again.stop());
  await assertStoreAgrees(t, { redis: again.client(), expect: { 'down/upload': incomplete } });
});

t.test('load check helper: a reader still sees the first checkpoint', async (t) => {
  const dest = { w: new Tensor('float32', [64 * 1024]), layers: [{ b: new Tensor('float32', [100]) }], blob: new Uint8Array(0), meta: { step: 0, tag: '' } };
  await load(dest, { checkpointId: 'async/one', storageReader: new RedisStorageReader({ redis }) });
  t.equal(dest.meta.step, 1);
});
