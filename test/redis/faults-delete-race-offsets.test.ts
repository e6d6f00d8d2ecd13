/**
 * A delete racing a save of the same checkpoint (issue 5, fault 8) at seeded offsets over the
 * whole save, end to end: saves by rank processes, deletes through CheckpointCatalog.delete
 * and the admin API's DELETE route, each run one after the other (their timing is the point).
 * Whatever the order, never interleaved: see faults-delete-race.test.ts for the invariants and
 * the deterministic points. Runs on a Redis server of its own (scene(),
 * test/helpers/delete-race.ts) and ends with an exhaustive keyspace check of it.
 */
import t from 'tap';
import { Tensor } from '../../src/core/tensor.js';
import { allDone } from '../helpers/child.js';
import { killStarted, NEW, OLD, outcomeOf, scene, type Via } from '../helpers/delete-race.js';
import { absent, assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';
import { prng } from '../helpers/prng.js';

t.teardown(killStarted);

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
  await calibration[0]!.waitFor('paused-at-setUp');
  const t0 = performance.now();
  await calibration[0]!.waitFor('entered-finish');
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
    await saving[0]!.waitFor('paused-at-setUp');
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

