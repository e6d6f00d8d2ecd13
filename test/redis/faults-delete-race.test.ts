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
 * The four tests run at once (t.jobs), each on a Redis server of its own (scene()), and end
 * with an exhaustive keyspace check of that server.
 */
import t, { type Test } from 'tap';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp } from '../../src/server/app.js';
import { allDone, startFixture, startRanks, type ChildResult, type RunningChild } from '../helpers/child.js';
import { prng } from '../helpers/prng.js';
import { absent, assertStoreAgrees, committed, incomplete, rankFixtureReference, type Expectation } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

// Long enough that a save or delete of this file keeps its lock while 3 test files share 2 cores.
const LOCK_TTL_MS = 2500;
const RANK_TIMEOUT_MS = 10_000;
const started = new Set<RunningChild>();
t.teardown(() => {
  for (const child of started) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL'); // a failed run's paused ranks
});
// The four tests at once, each on a scene (Redis server, catalog, admin app) of its own: most of
// their time is spent waiting on paused processes, process start-up and lock TTLs.
t.jobs = 4;

const keys = new KeySpace();
const OLD = 1;
const NEW = 2;

type Via = 'catalog' | 'api';
const STATUS: Record<string, number> = { CHECKPOINT_LOCKED: 409, FENCED: 409, CHECKPOINT_NOT_FOUND: 404 };

/**
 * A Redis server of the test's own with a catalog and the admin API on it, stopped when the test
 * ends, and the helpers bound to it. Each test ends with an exhaustive keyspace check of its server:
 * no other test's save or delete is ever halfway through there.
 */
async function scene(t: Test) {
  const server = await RedisServer.start();
  const redis = server.client();
  const catalog = new CheckpointCatalog({ redis, lockTtlMs: LOCK_TTL_MS });
  const app = await buildApp({ redis, logger: false });
  t.teardown(async () => {
    await app.close();
    await catalog.close();
    await server.stop();
  });
  /** Every id the test leaves behind, with what it must be: its last check is exhaustive. */
  const final: Record<string, Expectation> = {};

  function savers(id: string, env: NodeJS.ProcessEnv): RunningChild[] {
    const ranks = startRanks(server.url, 'save', id, 2, () => ({ SEED: String(NEW), LOCK_TTL_MS: String(LOCK_TTL_MS), ...env }), RANK_TIMEOUT_MS);
    for (const rank of ranks) started.add(rank);
    return ranks;
  }

  /** A save by this process of what the rank fixture saves with `seed` (small segments: more keys than one UNLINK batch). */
  async function saveHere(id: string, seed: number, segmentBytes?: number): Promise<void> {
    const writer = new RedisStorageWriter({ redis, lockTtlMs: LOCK_TTL_MS, ...(segmentBytes ? { segmentBytes } : {}) });
    try {
      await save(rankFixtureReference(seed), { checkpointId: id, storageWriter: writer });
    } finally {
      await writer.close();
    }
  }

  /** Deletes `id` through the library or the admin API; "deleted" or the error code (the API's status must match it). */
  async function deleteVia(t: Test, via: Via, id: string): Promise<string> {
    if (via === 'catalog') return catalog.delete(id).then((removed) => (removed ? 'deleted' : 'CHECKPOINT_NOT_FOUND'), (e: { code?: string; message?: string }) => e.code ?? `untyped: ${e.message}`);
    const res = await app.inject({ method: 'DELETE', url: `/checkpoints/${encodeURIComponent(id)}` });
    if (res.statusCode === 204) return 'deleted';
    const code = String((res.json() as { code?: unknown }).code);
    t.equal(res.statusCode, STATUS[code] ?? -1, `DELETE ${id}: ${code} answers ${STATUS[code] ?? '?'}`);
    return code;
  }

  const listed = async (id: string) => (await catalog.list({ prefix: id })).items.some((s) => s.id === id);

  /** Save ids that own data keys of `id`, and how many keys. */
  async function dataKeys(id: string): Promise<{ saves: string[]; count: number }> {
    const saves = new Set<string>();
    let count = 0;
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `dcp:data:${id}:*`, 'COUNT', 1000);
      for (const key of batch) saves.add(key.split(':').at(-3)!);
      count += batch.length;
      cursor = next;
    } while (cursor !== '0');
    return { saves: [...saves], count };
  }

  /** The exhaustive check: everything left behind on this server agrees with what each run reported. */
  const leftBehindAgrees = () => assertStoreAgrees(t, { redis, expect: final });

  return { server, redis, catalog, app, final, savers, saveHere, deleteVia, listed, dataKeys, leftBehindAgrees };
}

/** Resolves when `child` prints `text`; rejects (with its output) if it exits first, instead of waiting forever. */
function reach(child: RunningChild, text: string): Promise<void> {
  return Promise.race([child.waitFor(text), child.done.then((r) => Promise.reject(new Error(`exited before printing "${text}": ${r.stdout}${r.stderr}`)))]);
}

const outcomeOf = (ranks: ChildResult[]) => (ranks.every((r) => r.json?.ok === true) ? 'ok' : ranks.every((r) => r.json?.ok === false) ? 'failed' : 'mixed');

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
    await reach(saving[0]!, point.marker);
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


async function wait(ms: number): Promise<void> {
  if (ms >= 4) return new Promise((r) => setTimeout(r, ms));
  const until = performance.now() + ms;
  while (performance.now() < until);
}

t.test('delete and save racing at seeded offsets over the whole save: one whole order every time', async (t) => {
  const { redis, final, savers, saveHere, deleteVia, listed, leftBehindAgrees } = await scene(t);
  const EXTRA_BYTES = 8 << 20; // 8 MiB more per rank: writeData takes a while
  const EXTRA = { EXTRA_BYTES: String(EXTRA_BYTES) };
  // What the rank fixture saves with EXTRA_BYTES: a uint8 tensor "pad<rank>" filled with rank + 1.
  const padded = { ...rankFixtureReference(NEW), pad0: new Tensor('uint8', [EXTRA_BYTES], new Uint8Array(EXTRA_BYTES).fill(1)), pad1: new Tensor('uint8', [EXTRA_BYTES], new Uint8Array(EXTRA_BYTES).fill(2)) };
  // How long the save holds its lock, here: from its setUp to the start of finish, plus finish.
  await saveHere('race/calibrate', OLD);
  const calibration = savers('race/calibrate', { PAUSE_AT: 'setUp', PAUSE_MS: '0', MARK_FINISH: '1', ...EXTRA });
  await reach(calibration[0]!, 'paused-at-setUp');
  const t0 = performance.now();
  await reach(calibration[0]!, 'entered-finish');
  const toFinish = performance.now() - t0;
  const [coordinator] = await allDone(calibration);
  const lockedMs = toFinish + Number(coordinator!.json?.finishMs);
  t.match(coordinator!.json, { ok: true }, `a save holds its lock for about ${lockedMs.toFixed(1)} ms`);
  final['race/calibrate'] = committed(padded);

  const SEED = 8082026;
  const random = prng(SEED);
  // Offsets from the coordinator's announcement that it is about to take its lock: a few at
  // once (the delete and the save reach the lock together), the rest anywhere up to just past
  // the lock release.
  const offsets = [0, 0.5, 1, 2, ...Array.from({ length: 6 }, () => Math.round(random() * 1.6 * lockedMs * 10) / 10)];
  const outcomes: string[] = [];
  const tally = new Map<string, number>();
  for (const [i, offset] of offsets.entries()) {
    const id = `race/offset-${i}`;
    const fresh = i % 3 === 2; // every third run races the first save of the id
    const via: Via = i % 2 === 0 ? 'catalog' : 'api';
    const label = `offset ${offset} ms (${fresh ? 'first save' : 'overwrite'}, ${via})`;
    if (!fresh) await saveHere(id, OLD, 512); // many small keys: the delete takes a while
    const saving = savers(id, { PAUSE_AT: 'setUp', PAUSE_MS: '0', ...EXTRA });
    await reach(saving[0]!, 'paused-at-setUp');
    await wait(offset);
    const deleted = await deleteVia(t, via, id);
    const ranks = await allDone(saving);
    const saved = outcomeOf(ranks);
    const exists = await listed(id);
    t.ok(['deleted', 'CHECKPOINT_LOCKED', ...(fresh ? ['CHECKPOINT_NOT_FOUND'] : [])].includes(deleted), `${label}: delete ${deleted}`);
    t.not(saved, 'mixed', `${label}: the ranks agree (${ranks.map((r) => String(r.json?.code ?? 'ok')).join('/')})`);
    const codes = [...new Set(ranks.flatMap((r) => Object.values((r.json?.failures as Record<string, string> | undefined) ?? {})))];
    if (saved === 'failed') {
      t.ok(codes.length > 0 && codes.every((c) => ['CHECKPOINT_LOCKED', 'FENCED'].includes(c)), `${label}: the save failed with a typed error (${codes.join(', ')})`);
      t.equal(deleted, 'deleted', `${label}: only a delete that went through makes the save fail`);
    }
    if (deleted !== 'deleted') t.ok(saved === 'ok' && exists, `${label}: a refused delete left the save to commit`);
    if (fresh && deleted === 'deleted') t.ok(saved === 'ok' && !exists, `${label}: a first save can only be deleted after its commit`);
    // Whatever the order, the previous commit is gone: replaced (and whole) or deleted.
    final[id] = exists ? committed(padded) : absent;
    await assertStoreAgrees(t, { redis, expect: { [id]: final[id]! }, exhaustive: false });
    const order =
      deleted === 'CHECKPOINT_LOCKED' ? 'save held the lock, delete refused'
      : deleted === 'CHECKPOINT_NOT_FOUND' ? 'delete found nothing yet, save committed'
      : saved === 'failed' ? `delete held the lock, save refused (${codes.join(', ')})`
      : exists ? 'delete first, save created the id anew'
      : 'save committed, then deleted';
    tally.set(order, (tally.get(order) ?? 0) + 1);
    outcomes.push(`${offset} ms ${fresh ? 'first' : 'over'}/${via}: ${order}`);
  }
  t.comment(`lock held ${lockedMs.toFixed(1)} ms; PRNG seed ${SEED}; ${outcomes.join('; ')}`);
  t.comment(`distribution: ${[...tally].map(([k, n]) => `${n}× ${k}`).join(', ')}`);
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
      await reach(deleting, `delete-paused-after-${point}`);
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
