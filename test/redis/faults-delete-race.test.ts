/**
 * A delete racing a save of the same checkpoint (issue 5, fault 8), end to end: saves by
 * rank processes, deletes through CheckpointCatalog.delete and through the admin API's
 * DELETE route, and delete processes SIGKILLed part-way.
 *
 * Never interleaved: the delete runs wholly before the save (which then creates the id
 * anew, or is refused because the delete holds the lock), wholly after its commit (the id
 * is gone), or is refused with CHECKPOINT_LOCKED / 409 while the save holds the lock (the
 * new data is committed). Never a committed checkpoint with missing data, a listed id
 * without a checkpoint, or a load returning other bytes; the previous commit never
 * survives a delete that reported success. A dead delete leaves a checkpoint that refuses
 * to load, is listed incomplete ("being deleted" in validate), and that a second delete
 * finishes or a new save takes over. Every run ends with assertStoreAgrees.
 *
 * Each test runs on a Redis server of its own (scene(), test/helpers/delete-race.ts) and ends
 * with an exhaustive keyspace check of it. The races at seeded offsets are in
 * faults-delete-race-offsets.test.ts: a file of their own, so that tap runs them beside these
 * (each file runs its tests one after the other: a timing-sensitive run shares its event loop
 * with no other test).
 */
import t from 'tap';
import { KeySpace } from '../../src/redis/keys.js';
import { allDone, startFixture } from '../helpers/child.js';
import { killStarted, LOCK_TTL_MS, NEW, OLD, scene, started, type Via } from '../helpers/delete-race.js';
import { absent, assertStoreAgrees, committed, incomplete, rankFixtureReference } from '../helpers/invariants.js';

t.teardown(killStarted);
const keys = new KeySpace();

interface Point {
  readonly name: string;
  readonly env: NodeJS.ProcessEnv;
  readonly marker: string;
  /** When to delete, after the marker. */
  readonly afterMs: number;
  readonly deleted: 'deleted' | 'CHECKPOINT_LOCKED';
  readonly end: 'new' | 'absent';
}

const PAUSE_MS = 1500;
const POINTS: Point[] = [
  { name: 'before the save takes its lock', env: { PAUSE_AT: 'setUp' }, marker: 'paused-at-setUp', afterMs: 0, deleted: 'deleted', end: 'new' },
  { name: 'during global planning', env: { PAUSE_AT: 'prepareGlobalPlan' }, marker: 'paused-at-prepareGlobalPlan', afterMs: 0, deleted: 'CHECKPOINT_LOCKED', end: 'new' },
  // The coordinator waits 2.5 TTLs for global planning (slow ranks): its lock must stay extended.
  { name: 'while the coordinator waits past the lock TTL before global planning', env: { PAUSE_AT: 'prepareGlobalPlan', PAUSE_MS: String(LOCK_TTL_MS * 2.5) }, marker: 'paused-at-prepareGlobalPlan', afterMs: LOCK_TTL_MS + 300, deleted: 'CHECKPOINT_LOCKED', end: 'new' },
  { name: 'during writeData', env: { PAUSE_AT: 'writeData' }, marker: 'paused-at-writeData', afterMs: 0, deleted: 'CHECKPOINT_LOCKED', end: 'new' },
  { name: 'as finish begins', env: { PAUSE_AT: 'finish' }, marker: 'paused-at-finish', afterMs: 0, deleted: 'CHECKPOINT_LOCKED', end: 'new' },
  { name: 'inside finish, right after the commit script', env: { PAUSE_IN_FINISH: 'committed' }, marker: 'paused-in-finish-committed', afterMs: 0, deleted: 'CHECKPOINT_LOCKED', end: 'new' },
  { name: 'inside finish, before the lock release', env: { PAUSE_IN_FINISH: 'collected' }, marker: 'paused-in-finish-collected', afterMs: 0, deleted: 'CHECKPOINT_LOCKED', end: 'new' },
  { name: 'just after the commit (lock released, metadata not yet broadcast)', env: { PAUSE_AFTER: 'finish' }, marker: 'paused-after-finish', afterMs: 0, deleted: 'deleted', end: 'absent' },
];

t.test('a delete at each point of an overwrite save: wholly before, refused while the save holds the lock, or wholly after', async (t) => {
  const { redis, final, savers, saveHere, deleteVia, listed, leftBehindAgrees } = await scene(t);
  const runs: Array<Promise<void>> = [];
  for (const [i, point] of POINTS.entries()) {
    const id = `race/point-${i}`;
    const via: Via = i % 2 === 0 ? 'catalog' : 'api';
    const label = `delete (${via}) ${point.name}`;
    await saveHere(id, OLD);
    const saving = savers(id, { PAUSE_MS: String(PAUSE_MS), ...point.env });
    await saving[0]!.waitFor(point.marker);
    runs.push(
      (async () => {
        await new Promise((r) => setTimeout(r, point.afterMs));
        t.equal(await deleteVia(t, via, id), point.deleted, `${label}: ${point.deleted}`);
        const ranks = await allDone(saving);
        for (const r of ranks) t.match(r.json, { ok: true }, `${label}: rank ${String(r.json?.rank)} saved`);
        t.equal(await listed(id), point.end === 'new', `${label}: the checkpoint is ${point.end === 'new' ? 'the new save' : 'gone'}`);
        final[id] = point.end === 'new' ? committed(rankFixtureReference(NEW)) : absent;
      })(),
    );
  }
  await Promise.all(runs);
  // Checked once every run is over: the keyspace check must not see another run's commit halfway through its garbage collection.
  await assertStoreAgrees(t, { redis, expect: Object.fromEntries(POINTS.map((_, i) => [`race/point-${i}`, final[`race/point-${i}`]!])), exhaustive: false });
  await leftBehindAgrees();
});


t.test('a save started while a delete holds the lock is refused before writing anything; the delete completes', async (t) => {
  const { server, redis, final, savers, saveHere, dataKeys, leftBehindAgrees } = await scene(t);
  await Promise.all(
    (['begin', 'half'] as const).map(async (point) => {
      const id = `race/save-during-delete-${point}`;
      const label = `a save while the delete is paused after "${point}"`;
      await saveHere(id, OLD, 512);
      const oldSave = await redis.hget(keys.checkpoint(id).state, 'committedSaveId');
      const resumeKey = `test:resume:${id}`; // outside the prefix
      const deleting = startFixture('test/fixtures/delete.ts', [server.url, id, String(LOCK_TTL_MS)], { PAUSE_AFTER: point, PAUSE_MS: '20000', RESUME_KEY: resumeKey });
      started.add(deleting);
      await deleting.waitFor(`delete-paused-after-${point}`);
      const ranks = await allDone(savers(id, {}));
      t.equal(deleting.process.exitCode, null, `${label}: the delete was still paused when the save ended`);
      for (const r of ranks) t.match(r.json, { ok: false, code: 'CHECKPOINT_FAILED', failures: { 0: 'CHECKPOINT_LOCKED' } }, `${label}: rank ${String(r.json?.rank)} fails with CHECKPOINT_LOCKED`);
      t.same((await dataKeys(id)).saves, [oldSave], `${label}: the refused save wrote nothing`);
      await redis.set(resumeKey, '1');
      t.match((await deleting.done).json, { ok: true }, `${label}: the delete went on and completed`);
      await redis.del(resumeKey);
      final[id] = absent;
    }),
  );
  await assertStoreAgrees(t, { redis, expect: { 'race/save-during-delete-begin': absent, 'race/save-during-delete-half': absent }, exhaustive: false });
  await leftBehindAgrees();
});

t.test('a delete process SIGKILLed part-way: not loadable, listed incomplete, a second delete finishes it or a new save takes over', async (t) => {
  const { server, redis, catalog, app, final, saveHere, deleteVia, dataKeys, leftBehindAgrees } = await scene(t);
  const cases = (['begin', 'half', 'unlinked'] as const).flatMap((stop) => (['delete', 'save'] as const).map((then) => ({ stop, then, id: `race/killed-delete-${stop}-${then}` })));
  await Promise.all(cases.map(({ id }) => saveHere(id, OLD, 512)));
  const total = (await dataKeys(cases[0]!.id)).count;
  t.ok(total > 500, `${total} data keys each: more than one UNLINK batch`);
  const killed = await Promise.all(
    cases.map(async ({ id, stop }) => {
      const result = await startFixture('test/fixtures/delete.ts', [server.url, id, String(LOCK_TTL_MS)], { STOP_AFTER: stop }).done;
      // At once, while the dead delete's lock has not run out.
      return { result, again: await deleteVia(t, 'api', id) };
    }),
  );
  for (const [i, { id, stop }] of cases.entries()) {
    const label = `delete killed after "${stop}"`;
    t.equal(killed[i]!.result.signal, 'SIGKILL', `${label}: the delete process died`);
    t.equal(killed[i]!.again, 'CHECKPOINT_LOCKED', `${label}: another delete right away is refused: the dead delete's lock holds until its TTL`);
    const left = (await dataKeys(id)).count;
    if (stop === 'begin') t.equal(left, total, `${label}: every data key is still there`);
    if (stop === 'half') t.ok(left > 0 && left < total, `${label}: part of the data is gone (${left} of ${total} keys left)`);
    if (stop === 'unlinked') t.equal(left, 0, `${label}: every data key is gone, the control keys remain`);
    t.equal((await catalog.get(id)).state, 'incomplete', `${label}: listed incomplete`);
    t.match((await catalog.validate(id)).problems, [{ kind: 'not_committed', message: /being deleted/ }], `${label}: validate says it is being deleted`);
    t.equal((await app.inject(`/checkpoints/${encodeURIComponent(id)}`)).json().state, 'incomplete', `${label}: the API lists it incomplete`);
    await assertStoreAgrees(t, { redis, expect: { [id]: incomplete }, exhaustive: false });
  }
  await new Promise((r) => setTimeout(r, LOCK_TTL_MS + 200));
  for (const [i, { id, stop, then }] of cases.entries()) {
    const label = `delete killed after "${stop}"`;
    if (then === 'delete') {
      t.equal(await deleteVia(t, i % 4 === 0 ? 'catalog' : 'api', id), 'deleted', `${label}: a second delete completes it`);
      await assertStoreAgrees(t, { redis, expect: { [id]: absent }, exhaustive: false });
      final[id] = absent;
    } else {
      await saveHere(id, NEW);
      const current = await redis.hget(keys.checkpoint(id).state, 'committedSaveId');
      t.same(await redis.smembers(keys.checkpoint(id).saves), [current], `${label}: a new save took the id over and its commit collected the deleted save`);
      t.same((await dataKeys(id)).saves, [current], `${label}: only the new save has data keys`);
      final[id] = committed(rankFixtureReference(NEW));
      await assertStoreAgrees(t, { redis, expect: { [id]: final[id]! }, exhaustive: false });
    }
  }
  await leftBehindAgrees();
});
