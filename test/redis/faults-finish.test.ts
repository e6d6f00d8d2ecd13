/**
 * The coordinator process SIGKILLed during finish (issue 5, fault 2): whatever instant the
 * kill lands, the checkpoint is either the new save, whole, or still the previous one,
 * whole; never a mix, never unloadable. The follower's result agrees with that (it never
 * reports success for a save that did not commit), and the next save, once the dead
 * coordinator's lock has run out, commits and collects whatever was left.
 *
 * Kill points: at each sub-step of finish (test/fixtures/rank.ts PAUSE_IN_FINISH / PAUSE_AFTER:
 * before the commit script, after it, after the replaced save's data was unlinked, after the
 * replaced save was dropped, after the lock release), then at seeded random delays spread over
 * finish's measured duration, wherever they land.
 *
 * The two tests run at once (t.jobs), each on a Redis server of its own: the keyspace checks
 * must not see the other test's saves halfway through (its load pins, its garbage collection).
 */
import t, { type Test } from 'tap';
import type { Redis } from 'ioredis';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { allDone, startRanks, type ChildResult, type RunningChild } from '../helpers/child.js';
import { prng } from '../helpers/prng.js';
import { assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const started = new Set<RunningChild>();
t.teardown(() => {
  for (const child of started) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL'); // a failed run's paused ranks
});
// Both tests at once: the sub-step kills wait on paused ranks and follower timeouts while the random kills run.
t.jobs = 2;

/** A Redis server of the test's own, stopped when it ends. */
async function ownServer(t: Test): Promise<{ url: string; redis: Redis }> {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  return { url: server.url, redis: server.client() };
}

const LOCK_TTL_MS = 1500;
/** How long a follower waits for the coordinator's final broadcast (> LOCK_TTL_MS: once it gave up, the dead lock is gone too). */
const FOLLOWER_TIMEOUT_MS = 4000;
const keys = new KeySpace();
const OLD = 1;
const NEW = 2;

function doomedSave(url: string, id: string, env: NodeJS.ProcessEnv): RunningChild[] {
  const ranks = startRanks(url, 'save', id, 2, () => ({ SEED: String(NEW), LOCK_TTL_MS: String(LOCK_TTL_MS), ...env }), FOLLOWER_TIMEOUT_MS);
  for (const rank of ranks) started.add(rank);
  return ranks;
}

/** A save by this process of exactly what the rank fixture saves with `seed`. */
async function saveHere(redis: Redis, id: string, seed: number): Promise<void> {
  const writer = new RedisStorageWriter({ redis, lockTtlMs: LOCK_TTL_MS });
  try {
    await save(rankFixtureReference(seed), { checkpointId: id, storageWriter: writer });
  } finally {
    await writer.close();
  }
}

/** The seed of the checkpoint as committed now (loaded in this process), or undefined if it does not load. */
async function committedSeed(redis: Redis, id: string): Promise<number | undefined> {
  const sd = { seed: -1 };
  const reader = new RedisStorageReader({ redis });
  try {
    await load(sd, { checkpointId: id, storageReader: reader });
    return sd.seed;
  } catch {
    return undefined;
  } finally {
    await reader.close();
  }
}

/** Save ids that still own data keys of `id`. */
async function dataSaves(redis: Redis, id: string): Promise<string[]> {
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `dcp:data:${id}:*`, 'COUNT', 1000);
    for (const key of batch) found.add(key.split(':').at(-3)!);
    cursor = next;
  } while (cursor !== '0');
  return [...found].sort();
}

const sorted = (ids: Array<string | undefined>) => ids.map(String).sort();
const hget = (redis: Redis, id: string, field: string) => redis.hget(keys.checkpoint(id).state, field).then((v) => v ?? undefined);

/** The next save (the dead lock has lapsed) commits whole and leaves data of its own save only. */
async function nextSaveCollects(t: Test, redis: Redis, id: string, seed: number): Promise<void> {
  await saveHere(redis, id, seed);
  const current = await hget(redis, id, 'committedSaveId');
  t.same(await redis.smembers(keys.checkpoint(id).saves), [current], `${id}: the next save's commit collected every other save`);
  t.same(await dataSaves(redis, id), [current], `${id}: only the committed save has data keys`);
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(seed)) }, exhaustive: false });
}

interface KillPoint {
  readonly name: string;
  readonly env: NodeJS.ProcessEnv;
  readonly marker: string;
  /** The checkpoint after the kill. */
  readonly outcome: typeof OLD | typeof NEW;
  readonly lockHeld: boolean;
  /** Saves indexed / owning data after the kill (old, doomed = the killed save). */
  readonly indexed: Array<'old' | 'doomed'>;
  readonly withData: Array<'old' | 'doomed'>;
}

const POINTS: KillPoint[] = [
  { name: 'before the commit script', env: { PAUSE_IN_FINISH: 'locked' }, marker: 'paused-in-finish-locked', outcome: OLD, lockHeld: true, indexed: ['old', 'doomed'], withData: ['old', 'doomed'] },
  { name: 'right after the commit script', env: { PAUSE_IN_FINISH: 'committed' }, marker: 'paused-in-finish-committed', outcome: NEW, lockHeld: true, indexed: ['old', 'doomed'], withData: ['old', 'doomed'] },
  { name: "after unlinking the replaced save's data", env: { PAUSE_IN_FINISH: 'unlinked' }, marker: 'paused-in-finish-unlinked', outcome: NEW, lockHeld: true, indexed: ['old', 'doomed'], withData: ['doomed'] },
  { name: 'after dropping the replaced save, before the lock release', env: { PAUSE_IN_FINISH: 'collected' }, marker: 'paused-in-finish-collected', outcome: NEW, lockHeld: true, indexed: ['doomed'], withData: ['doomed'] },
  { name: 'after finish returned, before the metadata broadcast', env: { PAUSE_AFTER: 'finish' }, marker: 'paused-after-finish', outcome: NEW, lockHeld: false, indexed: ['doomed'], withData: ['doomed'] },
];

/** Resolves when `child` prints `text`; rejects (with its output) if it exits first, instead of waiting forever. */
function reach(child: RunningChild, text: string): Promise<void> {
  return Promise.race([child.waitFor(text), child.done.then((r) => Promise.reject(new Error(`exited before printing "${text}": ${r.stdout}${r.stderr}`)))]);
}

t.test('killed at each sub-step of finish: the previous commit or the new one, whole; the next save collects the rest', async (t) => {
  const { url, redis } = await ownServer(t);
  // Every point at once (separate ids, each coordinator paused at its marker until killed); the followers' timeouts overlap.
  const killed = await Promise.all(
    POINTS.map(async (point, i) => {
      const id = `finish/step-${i}`;
      const label = `killed ${point.name}`;
      await saveHere(redis, id, OLD);
      const old = await hget(redis, id, 'committedSaveId');
      const doomed = doomedSave(url, id, { ...point.env, PAUSE_MS: '60000' });
      await reach(doomed[0]!, point.marker);
      const doomedSaveId = (await hget(redis, id, 'pendingSaveId')) ?? (await hget(redis, id, 'committedSaveId'));
      doomed[0]!.process.kill('SIGKILL');
      const coordinator = await doomed[0]!.done;
      t.equal(coordinator.signal, 'SIGKILL', `${label}: the coordinator died`);
      t.equal(await redis.exists(keys.checkpoint(id).lock), point.lockHeld ? 1 : 0, `${label}: the lock is ${point.lockHeld ? 'still held until its TTL' : 'released'}`);
      return { id, point, old, doomedSaveId, follower: doomed[1]!.done };
    }),
  );
  // Checked once every follower is done: the keyspace check must not see a save halfway through its cleanup.
  await Promise.all(killed.map((k) => k.follower));
  for (const { id, point, old, doomedSaveId, follower } of killed) {
    const label = `killed ${point.name}`;
    t.match((await follower).json, { ok: false, code: 'CHECKPOINT_FAILED' }, `${label}: the follower never got the metadata and fails within its timeout`);
    t.equal(await committedSeed(redis, id), point.outcome, `${label}: the checkpoint is the ${point.outcome === OLD ? 'previous' : 'new'} save`);
    const name = (which: 'old' | 'doomed') => (which === 'old' ? old : doomedSaveId);
    t.same(sorted(await redis.smembers(keys.checkpoint(id).saves)), sorted(point.indexed.map(name)), `${label}: saves still indexed`);
    t.same(await dataSaves(redis, id), sorted(point.withData.map(name)), `${label}: saves that still own data keys`);
    // A kill after the commit cut its drop of the replaced save short: left indexed for the next save (or gc).
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(point.outcome)) }, exhaustive: false, superseded: [id] });
  }
  // The followers gave up after FOLLOWER_TIMEOUT_MS > LOCK_TTL_MS: the dead locks have lapsed.
  for (const { id } of killed) await nextSaveCollects(t, redis, id, 3);
  await assertStoreAgrees(t, { redis, expect: Object.fromEntries(POINTS.map((_, i) => [`finish/step-${i}`, committed(rankFixtureReference(3))])) });
});


const spin = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

t.test('killed at seeded random instants inside finish: all or nothing every time', async (t) => {
  const { url, redis } = await ownServer(t);
  // How long finish takes here: an overwrite of a checkpoint of this size, completed normally.
  const calibration: number[] = [];
  await saveHere(redis, 'finish/calibrate', OLD);
  for (let i = 0; i < 3; i++) {
    const [coordinator, follower] = await allDone(doomedSave(url, 'finish/calibrate', {}));
    t.match(follower!.json, { ok: true });
    calibration.push(Number(coordinator!.json?.finishMs));
  }
  const finishMs = calibration.sort((a, b) => a - b)[1]!;
  t.ok(finishMs > 0, `finish takes ${finishMs.toFixed(2)} ms (median of ${calibration.map((c) => c.toFixed(2)).join(', ')})`);

  const SEED = 20261128;
  const random = prng(SEED);
  const delays = Array.from({ length: 10 }, () => Math.round(random() * 1.5 * finishMs * 100) / 100);
  const runs: Array<{ id: string; delay: number; done: Promise<ChildResult[]> }> = [];
  for (const [i, delay] of delays.entries()) {
    const id = `finish/random-${i}`;
    await saveHere(redis, id, OLD);
    const doomed = doomedSave(url, id, { MARK_FINISH: '1' });
    await reach(doomed[0]!, 'entered-finish');
    spin(delay);
    doomed[0]!.process.kill('SIGKILL');
    // The follower's wait runs out in the background while the next run starts.
    runs.push({ id, delay, done: allDone(doomed) });
  }

  const outcomes: string[] = [];
  const tally = { old: 0, new: 0 };
  await Promise.all(runs.map((run) => run.done)); // every follower has given up or finished
  for (const { id, delay, done } of runs) {
    const [coordinator, follower] = await done;
    const now = await committedSeed(redis, id);
    const label = `kill ${delay} ms after entering finish`;
    t.ok(now === OLD || now === NEW, `${label}: the checkpoint is the previous save or the new one (got ${String(now)})`);
    if (coordinator!.signal !== 'SIGKILL') t.match(coordinator!.json, { ok: true }, `${label}: the coordinator had finished before the signal`);
    if (coordinator!.json?.ok === true) t.equal(now, NEW, `${label}: a coordinator that reported success committed`);
    if (follower!.json?.ok === true) t.equal(now, NEW, `${label}: a follower that reports success saw the new checkpoint committed`);
    else t.match(follower!.json, { ok: false, code: 'CHECKPOINT_FAILED' }, `${label}: the follower fails cleanly`);
    if (now === OLD) t.not(follower!.json?.ok, true, `${label}: nothing reports success for a save that did not commit`);
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(now ?? OLD)) }, exhaustive: false, superseded: [id] });
    const result = now === NEW ? 'new' : 'old';
    tally[result]++;
    outcomes.push(`${delay} ms: ${result}${coordinator!.signal === 'SIGKILL' ? '' : ' (finished first)'}, follower ${follower!.json?.ok === true ? 'ok' : 'failed'}`);
  }
  t.comment(`finish ${finishMs.toFixed(2)} ms; PRNG seed ${SEED}; kills → ${outcomes.join('; ')}`);
  t.comment(`distribution: ${tally.old} previous commit kept, ${tally.new} new commit`);

  // Every dead lock has lapsed (the followers waited longer than the TTL): the next saves commit and collect.
  for (const { id } of runs) await nextSaveCollects(t, redis, id, 3);
  await assertStoreAgrees(t, {
    redis,
    expect: Object.fromEntries([
      ['finish/calibrate', committed(rankFixtureReference(NEW))],
      ...runs.map(({ id }) => [id, committed(rankFixtureReference(3))]),
    ]),
  });
});
