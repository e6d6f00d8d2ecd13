/**
 * CheckpointManager across OS processes (RedisProcessGroup): only the coordinator deletes and
 * every rank's save resolves after retention ran; the coordinator SIGKILLed between two
 * retention deletes leaves every survivor loadable and the next save finishes the job.
 */
import t from 'tap';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointManager } from '../../src/manager/manager.js';
import { startFixture, type RunningChild } from '../helpers/child.js';
import { assertStoreAgrees, committed, type Expectation } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

const tensor = (r: number, step: number) => new Tensor('uint8', [4096], new Uint8Array(4096).fill((step * 7 + r) % 251));
const reference = (world: number, step: number) => Object.fromEntries(Array.from({ length: world }, (_, r) => [`r${r}`, tensor(r, step)]));
let groups = 0;

function ranks(run: string, world: number, first: number, last: number, env: (rank: number) => NodeJS.ProcessEnv = () => ({})): RunningChild[] {
  const groupId = `mgr-${process.pid}-${groups++}`;
  return Array.from({ length: world }, (_, rank) => startFixture('test/fixtures/manager-rank.ts', [server.url, run, String(rank), String(world), groupId, String(first), String(last)], env(rank)));
}

function lines(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('two ranks, keepLast 2: only the coordinator deletes; both ranks resolve each save with the retention result', async (t) => {
  const results = await Promise.all(ranks('two', 2, 1, 4, () => ({ KEEP_LAST: '2' })).map((c) => c.done));
  const [coord, follower] = results.map((r) => lines(r.stdout));
  t.match(coord!.at(-1), { ok: true, rank: 0 }, results[0]!.stderr);
  t.match(follower!.at(-1), { ok: true, rank: 1 }, results[1]!.stderr);
  t.ok((coord!.at(-1)!.deletes as number) >= 2, 'the coordinator ran the deletes');
  t.equal(follower!.at(-1)!.deletes, 0, 'the follower deleted nothing');
  const perSave = (rows: Array<Record<string, unknown>>) => rows.filter((r) => 'step' in r).map((r) => [r.step, r.deleted]);
  t.same(perSave(coord!), [[1, []], [2, []], [3, ['two/step-1']], [4, ['two/step-2']]]);
  t.same(perSave(follower!), perSave(coord!), 'the follower resolved each save after retention, with its result');
  await assertStoreAgrees(t, { redis, expect: { 'two/step-3': committed(reference(2, 3)), 'two/step-4': committed(reference(2, 4)), 'two/step-1': { state: 'absent' }, 'two/step-2': { state: 'absent' } } });
});

t.test('coordinator SIGKILLed between two retention deletes: survivors load bit for bit, the next save finishes the job', async (t) => {
  await redis.flushdb();
  // Steps 1-3 without retention, then step 4 with keepLast 1: retention deletes 1, 2, 3, pausing after each.
  const setup = await Promise.all(ranks('kill', 2, 1, 3).map((c) => c.done));
  t.ok(setup.every((r) => lines(r.stdout).at(-1)?.ok === true), 'steps 1-3 saved');
  const children = ranks('kill', 2, 4, 4, (rank) => ({ KEEP_LAST: '1', ...(rank === 0 ? { PAUSE_AFTER_DELETE: '5000' } : {}) }));
  await children[0]!.waitFor('deleted kill/step-1');
  children[0]!.process.kill('SIGKILL');
  const [killed, follower] = await Promise.all(children.map((c) => c.done));
  t.equal(killed!.signal, 'SIGKILL');
  t.match(lines(follower!.stdout).at(-1), { ok: false }, 'the follower does not report a finished save');
  const survivors: Record<string, Expectation> = { 'kill/step-1': { state: 'absent' }, 'kill/step-2': committed(reference(2, 2)), 'kill/step-3': committed(reference(2, 3)), 'kill/step-4': committed(reference(2, 4)) };
  await assertStoreAgrees(t, { redis, expect: survivors });
  // The next save (one process this time) runs retention again and finishes what was left.
  const manager = new CheckpointManager({ redis, run: 'kill', retention: { keepLast: 1 } });
  const next = await manager.save(5, reference(2, 5));
  t.same(next.deleted.sort(), ['kill/step-2', 'kill/step-3', 'kill/step-4']);
  t.same(await manager.steps(), [5]);
  await manager.close();
  await assertStoreAgrees(t, { redis, expect: { 'kill/step-5': committed(reference(2, 5)), 'kill/step-2': { state: 'absent' }, 'kill/step-3': { state: 'absent' }, 'kill/step-4': { state: 'absent' } } });
});
