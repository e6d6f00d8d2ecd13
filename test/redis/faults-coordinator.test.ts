/**
 * The coordinator process SIGKILLed just before its commit: nothing of that save becomes
 * visible, the previous commit stays loadable, and the next save collects its garbage.
 */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { allDone, startRanks } from '../helpers/child.js';
import { assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';

const { server, redis, catalog } = await serverWithCatalog();

const ranks = (mode: 'save' | 'load', id: string, world: number, env?: (rank: number) => NodeJS.ProcessEnv) => startRanks(server.url, mode, id, world, env);
const all = allDone;

t.test('coordinator killed before its commit: old commit intact, no partial visibility, garbage collected later', async (t) => {
  const id = 'coord/killed';
  for (const r of await all(ranks('save', id, 2, () => ({ SEED: '1', LOCK_TTL_MS: '1500' })))) t.match(r.json, { ok: true }, r.stderr);
  const firstSave = await redis.hget(`dcp:ckpt:{${id}}:state`, 'committedSaveId');

  const doomed = ranks('save', id, 2, () => ({ SEED: '2', LOCK_TTL_MS: '1500', PAUSE_AT: 'finish', PAUSE_MS: '60000' }));
  await doomed[0]!.waitFor('paused-at-finish');
  doomed[0]!.process.kill('SIGKILL');
  const [coordinator, follower] = await all(doomed);
  t.equal(coordinator!.signal, 'SIGKILL');
  t.match(follower!.json, { ok: false }, 'the follower fails instead of hanging');

  const state = await redis.hgetall(`dcp:ckpt:{${id}}:state`);
  t.equal(state.committedSaveId, firstSave, 'the killed save never committed');
  t.equal((await catalog.get(id)).state, 'committed', 'the previous commit is still the checkpoint');
  t.equal((await redis.smembers(`dcp:ckpt:{${id}}:saves`)).length, 2, 'the killed save is indexed for cleanup');
  for (const r of await all(ranks('load', id, 2))) t.match(r.json, { ok: true, seed: 1, wrong: 0 }, 'old data loads bit for bit');

  await new Promise((r) => setTimeout(r, 1600)); // the dead coordinator's lock lapses
  for (const r of await all(ranks('save', id, 2, () => ({ SEED: '3', LOCK_TTL_MS: '1500' })))) t.match(r.json, { ok: true }, r.stderr);
  for (const r of await all(ranks('load', id, 3))) t.match(r.json, { ok: true, seed: 3, wrong: 0 });
  t.equal((await redis.smembers(`dcp:ckpt:{${id}}:saves`)).length, 1, 'the killed save and the replaced one were collected');
  const dataSaves = new Set((await redis.keys(`dcp:data:${id}:*`)).map((k) => k.split(':')[3]));
  t.same([...dataSaves], [await redis.hget(`dcp:ckpt:{${id}}:state`, 'committedSaveId')], 'only the committed save has data keys');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(3)) } });
});
