/**
 * The coordinator process SIGKILLed during finish (issue 5, fault 2) at seeded random delays
 * spread over finish's measured duration, wherever they land: the checkpoint is the new save,
 * whole, or still the previous one, whole; nothing reports success for a save that did not
 * commit; the next save commits and collects the leftovers. The kill points at each sub-step
 * of finish are in faults-finish.test.ts (helpers: test/helpers/finish-kill.ts).
 */
import t from 'tap';
import { allDone, type ChildResult } from '../helpers/child.js';
import { committedSeed, doomedSave, killStarted, nextSaveCollects, NEW, OLD, ownServer, saveHere } from '../helpers/finish-kill.js';
import { assertStoreAgrees, committed, rankFixtureReference } from '../helpers/invariants.js';
import { prng } from '../helpers/prng.js';

t.teardown(killStarted);

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
    await doomed[0]!.waitFor('entered-finish');
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
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(now ?? OLD)) }, exhaustive: false });
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
