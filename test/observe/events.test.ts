/**
 * The tracing channels and onProgress (issue 14) against a real Redis: a 2-rank save and
 * load publish start/end/asyncStart/asyncEnd per rank with the rank's bytes and phases; a
 * refused save publishes error with its code; asyncSave publishes one async event from the
 * caller's thread; delete publishes the checkpoint's bytes; progress calls are throttled
 * and end with one "done" call whose totals are the checkpoint's bytes.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import t from 'tap';
import { asyncSave } from '../../src/core/async-save.js';
import { load } from '../../src/core/load.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { save } from '../../src/core/save.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import { DELETE_CHANNEL, LOAD_CHANNEL, SAVE_CHANNEL, type DeleteEvent, type LoadEvent, type SaveEvent } from '../../src/core/tracing.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointManager } from '../../src/manager/manager.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const KINDS = ['start', 'end', 'asyncStart', 'asyncEnd', 'error'] as const;
type Kind = (typeof KINDS)[number];

/** Records every event of a tracing channel until the test ends. */
function record<E>(t: { teardown(fn: () => unknown): void }, name: string): Array<{ kind: Kind; event: E }> {
  const seen: Array<{ kind: Kind; event: E }> = [];
  for (const kind of KINDS) {
    const fn = (message: unknown) => seen.push({ kind, event: { ...(message as object) } as E });
    subscribe(`tracing:${name}:${kind}`, fn);
    t.teardown(() => void unsubscribe(`tracing:${name}:${kind}`, fn));
  }
  return seen;
}

const shardedDict = (rank: number) => ({
  model: {
    weight: new ShardedTensor([4, 3], 'float32', [{ tensor: new Tensor('float32', [2, 3], Float32Array.from({ length: 6 }, (_, i) => rank * 6 + i)), offsets: [rank * 2, 0] }]),
    bias: new Tensor('float32', [3], Float32Array.from([0.5, 0.25, 0.125])),
  },
  step: 42,
});

let server: RedisServer;
t.before(async () => {
  server = await RedisServer.start();
});
t.teardown(() => server.stop());

t.test('a 2-rank save and load: one traced operation per rank with its bytes and phases', async (t) => {
  const saves = record<SaveEvent>(t, SAVE_CHANNEL);
  const loads = record<LoadEvent>(t, LOAD_CHANNEL);
  const redis = server.client();
  t.teardown(() => redis.quit());
  const id = 'events/two-ranks';
  const groups = createLocalGroups(2, { timeoutMs: 10_000 });
  await Promise.all(groups.map((processGroup, rank) => save(shardedDict(rank), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }), processGroup })));

  t.same(saves.map((s) => s.kind).sort(), ['asyncEnd', 'asyncEnd', 'asyncStart', 'asyncStart', 'end', 'end', 'start', 'start']);
  const ends = saves.filter((s) => s.kind === 'asyncEnd').map((s) => s.event).sort((a, b) => a.rank - b.rank);
  t.same(ends.map((e) => [e.checkpointId, e.rank, e.worldSize, e.async]), [[id, 0, 2, false], [id, 1, 2, false]]);
  const catalog = new CheckpointCatalog({ redis });
  const summary = (await catalog.get(id));
  t.equal(ends[0]!.bytes + ends[1]!.bytes, summary.totalBytes, 'the ranks\' bytes add up to the checkpoint\'s');
  t.ok(ends[1]!.bytes >= 24, 'rank 1 wrote at least its shard (2x3 float32)');
  for (const e of ends) {
    t.same(Object.keys(e.phases).sort(), ['commit', 'plan', 'stage', 'write']);
    t.ok(Object.values(e.phases).every((ms) => typeof ms === 'number' && ms >= 0), 'phases are durations in ms');
    t.equal(e.phases.stage, 0, 'a synchronous save stages nothing');
    t.ok(e.result, 'the metadata is the result');
    t.notOk(e.error);
  }
  const starts = saves.filter((s) => s.kind === 'start').map((s) => s.event);
  t.ok(starts.every((e) => e.bytes === 0), 'start comes before anything is written');

  const loadsDone: LoadEvent[] = [];
  await Promise.all(
    groups.map(async (processGroup) => {
      const target = { model: { weight: new Tensor('float32', [4, 3], new Float32Array(12)), bias: new Tensor('float32', [3], new Float32Array(3)) }, step: 0 };
      await load(target, { checkpointId: id, storageReader: new RedisStorageReader({ redis }), processGroup });
      t.equal(target.model.weight.data[11], 11, 'loaded');
    }),
  );
  loadsDone.push(...loads.filter((l) => l.kind === 'asyncEnd').map((l) => l.event));
  t.equal(loadsDone.length, 2);
  t.same(loads.filter((l) => l.kind === 'error'), []);
  for (const e of loadsDone) {
    t.equal(e.checkpointId, id);
    t.equal(e.worldSize, 2);
    t.same(Object.keys(e.phases).sort(), ['commit', 'plan', 'read', 'stage', 'write'], 'the four save phases (0 here) plus read');
    t.ok(e.phases.stage === 0 && e.phases.write === 0 && e.phases.commit === 0 && e.phases.read > 0, 'a load reads; it stages, writes and commits nothing');
    t.ok(e.bytes >= 48 + 12, `each rank read the whole weight and the bias (${e.bytes} bytes)`);
  }
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ model: { weight: new Tensor('float32', [4, 3], Float32Array.from({ length: 12 }, (_, i) => i)), bias: new Tensor('float32', [3], Float32Array.from([0.5, 0.25, 0.125])) }, step: 42 }) } });
  await catalog.close();
});

t.test('a refused save publishes error with its code; delete publishes the bytes it removed', async (t) => {
  const saves = record<SaveEvent>(t, SAVE_CHANNEL);
  const deletes = record<DeleteEvent>(t, DELETE_CHANNEL);
  const redis = server.client();
  t.teardown(() => redis.quit());
  const id = 'events/refused';
  await save({ w: new Tensor('float32', [4], new Float32Array(4)) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  await t.rejects(save({ w: new Tensor('float32', [4], new Float32Array(4)) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, overwrite: false }) }));
  const errors = saves.filter((s) => s.kind === 'error').map((s) => s.event);
  t.equal(errors.length, 1);
  t.match((errors[0]!.error as { code?: string }).code, 'CHECKPOINT_FAILED', 'the error carries its code (the CheckpointError of the failed step)');

  const catalog = new CheckpointCatalog({ redis });
  t.equal(await catalog.delete(id), true);
  t.equal(await catalog.delete(id), false);
  const done = deletes.filter((d) => d.kind === 'asyncEnd').map((d) => d.event);
  t.same(done.map((d) => [d.checkpointId, d.bytes, d.result]), [[id, 16, true], [id, 0, false]]);
  t.ok(done.every((d) => d.phases.delete >= 0 && d.phases.plan === 0 && d.phases.write === 0), 'delete times the whole operation; the save phases are 0');
  await assertStoreAgrees(t, { redis, expect: { [id]: absent }, exhaustive: false });
  await catalog.close();
});

t.test('onProgress: throttled, monotonic, ends with one done call; asyncSave publishes one async event', async (t) => {
  const saves = record<SaveEvent>(t, SAVE_CHANNEL);
  const redis = server.client();
  t.teardown(() => redis.quit());
  const n = 8 * 2 ** 20;
  const big = { w: new Tensor('uint8', [n], new Uint8Array(n).fill(7)) };
  const calls: Array<ProgressEvent & { at: number }> = [];
  await save(big, { checkpointId: 'events/progress', storageWriter: new RedisStorageWriter({ redis, segmentBytes: 2 ** 20 - 64 }), onProgress: (p) => calls.push({ ...p, at: performance.now() }) });
  t.ok(calls.length >= 1);
  const last = calls.at(-1)!;
  t.same([last.phase, last.bytesDone, last.bytesTotal], ['done', n, n], 'the last call is done, with every byte');
  t.equal(calls.filter((c) => c.phase === 'done').length, 1);
  for (let i = 1; i < calls.length - 1; i++) t.ok(calls[i]!.at - calls[i - 1]!.at >= 99, 'calls at least ~100 ms apart (the final one excepted)');
  t.ok(calls.every((c, i) => i === 0 || c.bytesDone >= calls[i - 1]!.bytesDone), 'bytesDone never goes back');
  t.ok(calls.every((c) => c.bytesDone <= c.bytesTotal || c.phase === 'plan'));

  const asyncCalls: ProgressEvent[] = [];
  saves.length = 0;
  const writer = new RedisStorageWriter({ redis: server.url });
  t.teardown(() => writer.close());
  const response = asyncSave(big, { checkpointId: 'events/async', storageWriter: writer, onProgress: (p) => asyncCalls.push(p) });
  await response.staged;
  await response.committed;
  t.same(asyncCalls.at(-1), { phase: 'done', bytesDone: n, bytesTotal: n });
  t.equal(asyncCalls.filter((c) => c.phase === 'done').length, 1, 'one done call (the worker leaves it to the caller)');
  const ends = saves.filter((s) => s.kind === 'asyncEnd').map((s) => s.event);
  t.equal(ends.length, 1, 'one event for the background save, on the caller\'s thread');
  t.match(ends[0], { checkpointId: 'events/async', rank: 0, worldSize: 1, async: true, bytes: n });
  t.ok(ends[0]!.blockedMs! >= 0 && ends[0]!.phases.stage >= 0 && ends[0]!.phases.write > 0, 'blocked time, the caller\'s staging and the worker\'s write');
  await assertStoreAgrees(t, { redis, expect: { 'events/async': committed(big), 'events/progress': committed(big) }, exhaustive: false });
});

t.test('CheckpointManager passes onProgress to save, asyncSave and load', async (t) => {
  const redis = server.client();
  const manager = new CheckpointManager({ redis, run: 'events-mgr' });
  t.teardown(async () => {
    await manager.close();
    await redis.quit();
  });
  const sd = { w: new Tensor('float32', [1024], new Float32Array(1024).fill(3)) };
  const last = (calls: ProgressEvent[]) => calls.at(-1);
  const saved: ProgressEvent[] = [];
  await manager.save(1, sd, { onProgress: (p) => saved.push(p) });
  t.same(last(saved), { phase: 'done', bytesDone: 4096, bytesTotal: 4096 });
  const background: ProgressEvent[] = [];
  await manager.asyncSave(2, sd, { onProgress: (p) => background.push(p) }).committed;
  t.same(last(background), { phase: 'done', bytesDone: 4096, bytesTotal: 4096 });
  const loaded: ProgressEvent[] = [];
  t.equal(await manager.load({ w: new Tensor('float32', [1024], new Float32Array(1024)) }, { onProgress: (p) => loaded.push(p) }), 2);
  t.same(last(loaded), { phase: 'done', bytesDone: 4096, bytesTotal: 4096 });
});
