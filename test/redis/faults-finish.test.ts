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
 * finish's measured duration, wherever they land (faults-finish-random.test.ts: a file of its
 * own, so that tap runs it beside this one; shared helpers in test/helpers/finish-kill.ts).
 */
import t from 'tap';
import type { ChildResult } from '../helpers/child.js';
import { dataSaves, doomedSave, hget, keys, killStarted, nextSaveCollects, OLD, NEW, ownServer, saveHere, committedSeed, sorted } from '../helpers/finish-kill.js';
import { assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';

t.teardown(killStarted);

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

t.test('killed at each sub-step of finish: the previous commit or the new one, whole; the next save collects the rest', async (t) => {
  const { url, redis } = await ownServer(t);
  // One point after the other up to its kill; the followers' timeouts overlap.
  const killed: Array<{ id: string; point: KillPoint; old: string | undefined; doomedSaveId: string | undefined; follower: Promise<ChildResult> }> = [];
  for (const [i, point] of POINTS.entries()) {
    const id = `finish/step-${i}`;
    const label = `killed ${point.name}`;
    await saveHere(redis, id, OLD);
    const old = await hget(redis, id, 'committedSaveId');
    const doomed = doomedSave(url, id, { ...point.env, PAUSE_MS: '60000' });
    await doomed[0]!.waitFor(point.marker);
    const doomedSaveId = (await hget(redis, id, 'pendingSaveId')) ?? (await hget(redis, id, 'committedSaveId'));
    doomed[0]!.process.kill('SIGKILL');
    const coordinator = await doomed[0]!.done;
    t.equal(coordinator.signal, 'SIGKILL', `${label}: the coordinator died`);
    t.equal(await redis.exists(keys.checkpoint(id).lock), point.lockHeld ? 1 : 0, `${label}: the lock is ${point.lockHeld ? 'still held until its TTL' : 'released'}`);
    killed.push({ id, point, old, doomedSaveId, follower: doomed[1]!.done });
  }
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
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(point.outcome)) }, exhaustive: false });
  }
  // The followers gave up after FOLLOWER_TIMEOUT_MS > LOCK_TTL_MS: the dead locks have lapsed.
  for (const { id } of killed) await nextSaveCollects(t, redis, id, 3);
  await assertStoreAgrees(t, { redis, expect: Object.fromEntries(POINTS.map((_, i) => [`finish/step-${i}`, committed(rankFixtureReference(3))])) });
});
