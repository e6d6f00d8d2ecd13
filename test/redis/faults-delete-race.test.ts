/**
 * A delete racing a save of the same checkpoint (issue 5, fault 8), end to end with rank
 * processes, and a delete process killed mid-way. Never interleaved: the delete either runs
 * entirely before or after the save, or is refused (CHECKPOINT_LOCKED) while the save holds
 * the lock; never a committed checkpoint with missing data; a dead delete leaves a
 * checkpoint that refuses to load and that a second delete finishes.
 */
import t from 'tap';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { allDone, startFixture, startRanks } from '../helpers/child.js';
import { absent, assertStoreAgrees, committed, incomplete, rankFixtureReference } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
const LOCK_TTL_MS = 1500;
const catalog = new CheckpointCatalog({ redis, lockTtlMs: LOCK_TTL_MS });
t.teardown(async () => {
  await catalog.close();
  await server.stop();
});

const ranks = (id: string, world: number, env: NodeJS.ProcessEnv = {}) => startRanks(server.url, 'save', id, world, () => ({ LOCK_TTL_MS: String(LOCK_TTL_MS), ...env }), 5000);
const all = allDone;
const deleteOutcome = (id: string) => catalog.delete(id).then(() => 'deleted', (e: { code?: string }) => e.code ?? 'ERROR');

t.test('a delete during each step of an overwrite save is refused; the save commits whole', async (t) => {
  for (const step of ['prepareGlobalPlan', 'writeData', 'finish']) {
    const id = `race/during-${step}`;
    for (const r of await all(ranks(id, 2, { SEED: '1' }))) t.match(r.json, { ok: true }, r.stderr);
    const saving = ranks(id, 2, { SEED: '2', PAUSE_AT: step, PAUSE_MS: '400' });
    await saving[0]!.waitFor(`paused-at-${step}`);
    t.equal(await deleteOutcome(id), 'CHECKPOINT_LOCKED', `delete during ${step}: refused`);
    for (const r of await all(saving)) t.match(r.json, { ok: true }, `the save goes on and commits (${step})`);
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(2)) }, exhaustive: false });
    t.equal(await deleteOutcome(id), 'deleted', 'once the save is done, the delete goes through');
    await assertStoreAgrees(t, { redis, expect: { [id]: absent }, exhaustive: false });
  }
});

t.test('delete and save started together at many offsets: one whole order every time', async (t) => {
  const id = 'race/together';
  for (const r of await all(ranks(id, 2, { SEED: '1' }))) t.match(r.json, { ok: true }, r.stderr);
  const outcomes: string[] = [];
  // Offsets from the moment the coordinator is about to take the lock (process start-up excluded).
  for (const [i, offsetMs] of [0, 3, 10, 25, 60, 150, 400].entries()) {
    if ((await catalog.list({ prefix: id })).items.length === 0) for (const r of await all(ranks(id, 2, { SEED: '1' }))) t.match(r.json, { ok: true });
    const seed = 20 + i;
    const saving = ranks(id, 2, { SEED: String(seed), PAUSE_AT: 'setUp', PAUSE_MS: '0' });
    await saving[0]!.waitFor('paused-at-setUp');
    await new Promise((r) => setTimeout(r, offsetMs));
    const deleted = await deleteOutcome(id);
    const saved = await all(saving);
    const saveOk = saved.every((r) => r.json?.ok === true);
    t.ok(['deleted', 'CHECKPOINT_LOCKED'].includes(deleted), `offset ${offsetMs} ms: delete ${deleted}`);
    t.ok(saveOk || saved.every((r) => r.json?.ok === false), `offset ${offsetMs} ms: the ranks agree (${saved.map((r) => String(r.json?.code ?? 'ok')).join('/')})`);
    const exists = (await catalog.list({ prefix: id })).items.length > 0;
    // Deleted before the save began: the save made it anew. Refused: the save won. After the commit: gone.
    if (exists) await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(saveOk ? seed : 1)) }, exhaustive: false });
    else await assertStoreAgrees(t, { redis, expect: { [id]: absent }, exhaustive: false });
    if (deleted === 'CHECKPOINT_LOCKED') t.ok(exists && saveOk, 'a refused delete means the save held the lock and committed');
    outcomes.push(`${offsetMs}ms: delete ${deleted}, save ${saveOk ? 'ok' : 'failed'}, ${exists ? `checkpoint = seed ${saveOk ? seed : 1}` : 'gone'}`);
  }
  t.comment(outcomes.join('; '));
});

t.test('a delete process killed mid-way: not loadable, listed, and a second delete finishes it', async (t) => {
  for (const stopAfter of ['begin', 'half']) {
    const id = `race/killed-delete-${stopAfter}`;
    for (const r of await all(ranks(id, 2, { SEED: '5' }))) t.match(r.json, { ok: true }, r.stderr);
    const killed = await startFixture('test/fixtures/delete.ts', [server.url, id, String(LOCK_TTL_MS)], { STOP_AFTER: stopAfter }).done;
    t.equal(killed.signal, 'SIGKILL', `the delete died after "${stopAfter}"`);
    await assertStoreAgrees(t, { redis, expect: { [id]: incomplete }, exhaustive: false });
    t.equal(await deleteOutcome(id), 'CHECKPOINT_LOCKED', 'the dead delete still holds the lock until its TTL');
    await new Promise((r) => setTimeout(r, LOCK_TTL_MS + 200));
    t.equal(await deleteOutcome(id), 'deleted', 'a second delete completes it');
    await assertStoreAgrees(t, { redis, expect: { [id]: absent }, exhaustive: false });
    for (const r of await all(ranks(id, 2, { SEED: '6' }))) t.match(r.json, { ok: true }, 'the id can be saved again');
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(6)) }, exhaustive: false });
  }
});
