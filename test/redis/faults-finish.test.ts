/**
 * The coordinator process SIGKILLed during finish (issue 5, fault 2): whatever instant the
 * kill lands, the checkpoint is either the new save, whole, or still the previous one,
 * whole; never a mix, never unloadable; and the next save collects whatever was left.
 */
import t from 'tap';
import { load } from '../../src/core/load.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { allDone, startRanks } from '../helpers/child.js';
import { assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
const catalog = new CheckpointCatalog({ redis });
t.teardown(async () => {
  await catalog.close();
  await server.stop();
});

const LOCK_TTL_MS = 1500;
const ranks = (mode: 'save' | 'load', id: string, world: number, env: NodeJS.ProcessEnv = {}) => startRanks(server.url, mode, id, world, () => ({ LOCK_TTL_MS: String(LOCK_TTL_MS), ...env }), 3000);
const all = allDone;
const lapse = () => new Promise((r) => setTimeout(r, LOCK_TTL_MS + 200)); // a killed coordinator's lock runs out

/** The seed of the checkpoint as committed now (loaded in this process), or undefined if it does not load. */
async function committedSeed(id: string): Promise<number | undefined> {
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

t.test('killed right after its commit: the new checkpoint is whole, the follower fails, the next save collects nothing wrong', async (t) => {
  const id = 'finish/after-commit';
  for (const r of await all(ranks('save', id, 2, { SEED: '1' }))) t.match(r.json, { ok: true }, r.stderr);
  const doomed = ranks('save', id, 2, { SEED: '2', PAUSE_AFTER: 'finish', PAUSE_MS: '60000' });
  await doomed[0]!.waitFor('paused-after-finish');
  doomed[0]!.process.kill('SIGKILL');
  const [coordinator, follower] = await all(doomed);
  t.equal(coordinator!.signal, 'SIGKILL');
  t.match(follower!.json, { ok: false, code: 'CHECKPOINT_FAILED' }, 'the follower never got the metadata: it fails, within its timeout');
  t.equal(await committedSeed(id), 2, 'the commit had happened: the new save is the checkpoint');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(2)) } });
  await lapse();
  for (const r of await all(ranks('save', id, 2, { SEED: '3' }))) t.match(r.json, { ok: true }, r.stderr);
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(3)) } });
  await catalog.delete(id);
  await assertStoreAgrees(t, { redis, expect: { [id]: { state: 'absent' } } });
});

t.test('killed at spread instants inside finish: all or nothing every time', async (t) => {
  const id = 'finish/spread';
  for (const r of await all(ranks('save', id, 2, { SEED: '1' }))) t.match(r.json, { ok: true }, r.stderr);
  let current = 1;
  const outcomes: string[] = [];
  // Delays after the coordinator announces finish: from before the commit script to after the lock release.
  const delaysMs = [0, 2, 5, 9, 20];
  for (const [i, delay] of delaysMs.entries()) {
    const seed = 10 + i;
    const doomed = ranks('save', id, 2, { SEED: String(seed), PAUSE_AT: 'finish', PAUSE_MS: '0' });
    await doomed[0]!.waitFor('paused-at-finish');
    await new Promise((r) => setTimeout(r, delay));
    doomed[0]!.process.kill('SIGKILL');
    const [coordinator, follower] = await all(doomed);
    const now = await committedSeed(id);
    t.ok(now === current || now === seed, `kill after ${delay} ms: the checkpoint is the previous save (${current}) or the new one (${seed}), got ${String(now)}`);
    if (coordinator!.signal !== 'SIGKILL') t.match(coordinator!.json, { ok: true }, 'the coordinator finished before the signal');
    if (follower!.json?.ok === true) t.equal(now, seed, 'a follower that reports success saw the new checkpoint committed');
    outcomes.push(now === seed ? 'new' : 'old');
    current = now ?? current;
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(current)) } });
    if (coordinator!.signal === 'SIGKILL') await lapse();
  }
  t.comment(`outcomes by kill delay ${delaysMs.join('/')} ms: ${outcomes.join(', ')}`);
  for (const r of await all(ranks('save', id, 2, { SEED: '99' }))) t.match(r.json, { ok: true }, r.stderr);
  t.equal((await redis.smembers(`dcp:ckpt:{${id}}:saves`)).length, 1, 'every killed save was collected by the next commit');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(99)) } });
});
