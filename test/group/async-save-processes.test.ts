/**
 * asyncSave across real rank processes on a real Redis (issue 11): the caller mutates
 * everything after `staged`; the upload commits while the main thread is blocked; a
 * second save waits for the first with one staged copy; a rank killed mid-upload; the
 * caller's process exiting with a save pending. Every scenario ends with assertStoreAgrees.
 * The rank process is test/fixtures/async-rank.ts.
 */
import t from 'tap';
import { Tensor } from '../../src/core/tensor.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { allDone, startFixture, type RunningChild } from '../helpers/child.js';
import { absent, assertStoreAgrees, committed, incomplete, rankFixtureReference, type Expectation } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';
import { blobOf, replicated } from '../fixtures/async-data.js';

let server: RedisServer;
t.before(async () => {
  server = await RedisServer.start();
});
t.teardown(() => server.stop());

let groupSeq = 0;
function startAsyncRanks(scenario: string, id: string, world: number, env: (rank: number) => NodeJS.ProcessEnv = () => ({}), timeoutMs = 8000): RunningChild[] {
  const groupId = `async-${process.pid}-${groupSeq++}`;
  return Array.from({ length: world }, (_, rank) => startFixture('test/fixtures/async-rank.ts', [scenario, server.url, id, String(rank), String(world), groupId, String(timeoutMs)], env(rank)));
}

/** What async-rank.ts saves with `seed`, unsharded (pads: the EXTRA_BYTES tensors of `world` ranks). */
function reference(seed: number, pads?: { world: number; bytes: number }): StateDict {
  const sd: StateDict = { w: rankFixtureReference(seed).w!, r: new Tensor('float64', [257], replicated(seed)), blob: blobOf(seed), meta: { step: seed, tag: 'async' } };
  for (let rank = 0; pads && rank < pads.world; rank++) sd[`pad${rank}`] = new Tensor('uint8', [pads.bytes], new Uint8Array(pads.bytes).fill(rank + 1));
  return sd;
}

t.test('2 ranks: every tensor, the bytes and the JSON overwritten after staged; the checkpoint holds the pre-mutation values bit for bit', async (t) => {
  const results = await allDone(startAsyncRanks('mutate', 'async/mutate', 2));
  t.same(results.map((r) => r.json?.ok), [true, true], `both committed ${results.map((r) => r.stdout + r.stderr).join(' | ')}`);
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { 'async/mutate': committed(reference(1)) } });
});

t.test('the main thread busy-loops for 3 s after staged: another process sees the checkpoint committed before the loop ends', async (t) => {
  const id = 'async/busy';
  const ranks = startAsyncRanks('busy', id, 2, () => ({ BUSY_MS: '3000' }));
  const catalog = new CheckpointCatalog({ redis: server.client() });
  let seenAtMs: number | undefined;
  const watching = (async () => {
    while (seenAtMs === undefined) {
      const found = (await catalog.list({ limit: 1000 })).items.find((i) => i.id === id);
      if (found?.state === 'committed') seenAtMs = performance.timeOrigin + performance.now();
      else await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const results = await allDone(ranks);
  await Promise.race([watching, new Promise((r) => setTimeout(r, 2000))]);
  await catalog.close();
  t.same(results.map((r) => r.json?.ok), [true, true], 'both ranks committed');
  t.ok(seenAtMs !== undefined, 'the commit was observed');
  for (const r of results) {
    const busyEndMs = r.json?.busyEndMs as number;
    t.ok(seenAtMs! < busyEndMs, `rank ${String(r.json?.rank)}: committed in Redis before its busy loop ended (${(busyEndMs - seenAtMs!).toFixed(0)} ms before)`);
  }
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { [id]: committed(reference(1)), [`${id}-warmup`]: committed(reference(1)) } });
});

t.test('a second asyncSave while the first uploads: it stages only after the first committed, both commit, one staged copy in memory', async (t) => {
  const extra = 8 << 20;
  const results = await allDone(startAsyncRanks('twice', 'async/twice', 2, () => ({ PAUSE_MS: '400', EXTRA_BYTES: String(extra) })));
  for (const r of results) {
    const j = r.json!;
    t.same(j.events, ['first committed', 'second staged', 'second committed'], `rank ${String(j.rank)}: in order`);
    t.equal(j.allocations, 1, `rank ${String(j.rank)}: the second save staged into the first one's buffers`);
    const rankBytes = extra + 48 * 1024 * 4 + 257 * 8 + 100;
    t.ok((j.stagedBytes as number) >= rankBytes && (j.stagedBytes as number) < rankBytes * 1.05, `rank ${String(j.rank)}: one staged copy (${String(j.stagedBytes)} bytes for ${rankBytes})`);
    t.ok((j.arrayBuffers as number) < 2.5 * rankBytes, `rank ${String(j.rank)}: array buffer memory holds the state dict and one copy (${String(j.arrayBuffers)})`);
  }
  const pads = { world: 2, bytes: extra };
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { 'async/twice': committed(reference(1, pads)), 'async/twice-b': committed(reference(2, pads)) } });
});

t.test('a rank SIGKILLed during the background upload: the other rank fails, the previous commit stays whole', async (t) => {
  const id = 'async/killed';
  const ranks = startAsyncRanks('kill', id, 2, (rank) => (rank === 1 ? { PAUSE_MS: '30000' } : {}), 4000);
  await ranks[1]!.waitFor('paused-in-write');
  ranks[1]!.process.kill('SIGKILL');
  const [survivor, killed] = await allDone(ranks);
  t.equal(killed!.signal, 'SIGKILL');
  t.equal(survivor!.json?.ok, false, 'rank 0: committed rejects');
  t.equal(survivor!.json?.code, 'CHECKPOINT_FAILED');
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { [id]: committed(reference(1)) } });
});

t.test('a rank SIGKILLed during the first background save of an id: incomplete, never loadable', async (t) => {
  const id = 'async/killed-first';
  const ranks = startAsyncRanks('mutate', id, 2, (rank) => (rank === 1 ? { PAUSE_MS: '30000' } : {}), 4000);
  await ranks[1]!.waitFor('paused-in-write');
  ranks[1]!.process.kill('SIGKILL');
  const [survivor] = await allDone(ranks);
  t.equal(survivor!.json?.code, 'CHECKPOINT_FAILED', 'rank 0: committed rejects');
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { [id]: incomplete } });
});

t.test('staging fails on one rank (an unsupported value): every rank fails at once with that rank\'s error, as save() does', async (t) => {
  const id = 'async/bad';
  // A long collective timeout: a rank that did not hear of the failure would report COLLECTIVE_TIMEOUT after it, not this.
  const results = await allDone(startAsyncRanks('bad', id, 2, () => ({ BAD_RANK: '1' }), 60_000));
  const [good, bad] = results.map((r) => r.json!);
  t.match(bad!.error, /Unsupported state dict value at "bad"/, 'the bad rank: committed rejects with its staging error');
  t.equal(bad!.code, 'UNSUPPORTED_VALUE');
  t.match(results[1]!.stdout, /"stagedCode":"UNSUPPORTED_VALUE"/, 'the bad rank: staged rejects with it too');
  t.equal(good!.code, 'CHECKPOINT_FAILED', 'the other rank fails');
  t.same(good!.failures, { 1: 'UNSUPPORTED_VALUE' }, "with the bad rank's error, not a timeout");
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { [id]: absent } });
});

t.test('the caller returns without awaiting committed: the pending upload keeps the process alive and commits', async (t) => {
  const results = await allDone(startAsyncRanks('return', 'async/return', 2));
  t.same(results.map((r) => r.code), [0, 0]);
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { 'async/return': committed(reference(1)) } });
});

t.test('the caller calls process.exit with a save pending: the checkpoint is committed whole or not at all', async (t) => {
  const id = 'async/exit';
  const results = await allDone(startAsyncRanks('exit', id, 2));
  t.same(results.map((r) => r.code), [0, 0]);
  const catalog = new CheckpointCatalog({ redis: server.client() });
  const state = (await catalog.list({ limit: 1000 })).items.find((i) => i.id === id)?.state;
  await catalog.close();
  const expectation: Expectation = state === 'committed' ? committed(reference(1)) : state === undefined ? absent : incomplete;
  t.comment(`after the exit the checkpoint is ${state ?? 'absent'}`);
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { [id]: expectation } });
});

t.test('the caller calls process.exit while its worker writes: the checkpoint is left incomplete, never loadable', async (t) => {
  const id = 'async/exit-writing';
  const results = await allDone(startAsyncRanks('exit-writing', id, 2, () => ({ PAUSE_MS: '3000' })));
  t.same(results.map((r) => r.json?.exitedWhile), ['writing', 'writing'], 'both exited mid-upload');
  await assertStoreAgrees(t, { redis: server.client(), exhaustive: false, expect: { [id]: incomplete } });
});
