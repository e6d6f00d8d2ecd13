import t from 'tap';
import { CollectiveTimeoutError } from '../../src/core/errors.js';
import { RedisProcessGroup } from '../../src/dist/redis-process-group.js';
import { RedisClusterFixture, RedisServer } from '../helpers/redis-server.js';
import { startFixture } from '../helpers/child.js';

const server = await RedisServer.start();
t.teardown(() => server.stop());

const worker = 'test/fixtures/pg-worker.ts';

t.test('collectives across 3 OS processes', async (t) => {
  const runs = [0, 1, 2].map((rank) => startFixture(worker, [server.url, 'procs', String(rank), '3', '10000', 'ok']).done);
  const results = (await Promise.all(runs)).map((r) => r.json!);
  for (const [rank, r] of results.entries()) {
    t.equal(r.error, undefined, `rank ${rank}: ${String(r.error)}`);
    t.equal(r.scattered, `for-${rank}`);
    t.equal(r.broadcastFrom, 2);
    t.equal(r.broadcastLength, 200_000);
    t.same(r.all, [0, 10, 20]);
  }
  t.same(results[1]!.gathered, [{ rank: 0, square: 0 }, { rank: 1, square: 1 }, { rank: 2, square: 4 }]);
  t.equal(results[0]!.gathered, undefined);
  const leftovers = (await server.client().keys('dcp:pg:{procs}:*')).filter((k) => !k.endsWith(':owner'));
  t.same(leftovers, [], 'consumed inboxes are gone');
});

t.test('a rank that dies makes the others fail in time, not hang', async (t) => {
  const started = Date.now();
  const runs = [0, 1, 2].map((rank) => startFixture(worker, [server.url, 'dies', String(rank), '3', '1500', rank === 2 ? 'die-after-gather' : 'ok']).done);
  const results = await Promise.all(runs);
  t.equal(results[2]!.code, 3, 'rank 2 exited');
  for (const rank of [0, 1]) {
    t.equal(results[rank]!.json!.code, 'COLLECTIVE_TIMEOUT', `rank ${rank} timed out`);
    t.match(String(results[rank]!.json!.error), /rank\(s\) 2|did not start|timed out/);
  }
  t.ok(Date.now() - started < 15_000, 'well within bounds');
});

t.test('a rank that never shows up → CollectiveTimeoutError naming it', async (t) => {
  const client = server.client();
  const g0 = new RedisProcessGroup({ redis: client, groupId: 'absent', rank: 0, worldSize: 2, timeoutMs: 500 });
  const err = await g0.gather('x', 0).catch((e: unknown) => e);
  t.ok(err instanceof CollectiveTimeoutError);
  t.match((err as Error).message, /rank\(s\) 1/);
  await g0.close();
});

t.test('a reused group id never reads a previous run’s messages', async (t) => {
  const client = server.client();
  // A crashed earlier run left a message in rank 1's inbox for seq 0.
  await client.rpush('dcp:pg:{reuse}:0:1', JSON.stringify({ t: 'old-run', f: 0, v: 'stale' }));
  const groups = [0, 1].map((rank) => new RedisProcessGroup({ redis: client, groupId: 'reuse', rank, worldSize: 2, timeoutMs: 3000 }));
  const [a, b] = await Promise.all([groups[0]!.broadcast('fresh', 0), groups[1]!.broadcast(undefined, 0)]);
  t.equal(a, 'fresh');
  t.equal(b, 'fresh');
  const second = new RedisProcessGroup({ redis: client, groupId: 'reuse', rank: 0, worldSize: 2, timeoutMs: 300 });
  await t.rejects(second.barrier(), { code: 'GROUP_IN_USE' }, 'a concurrent run with the same id is refused');
  await Promise.all([...groups, second].map((g) => g.close()));
});

t.test('bad options are typed errors', async (t) => {
  const client = server.client();
  t.throws(() => new RedisProcessGroup({ redis: client, groupId: 'x', rank: 2, worldSize: 2 }), { code: 'DCP_VALUE_ERROR' });
  t.throws(() => new RedisProcessGroup({ redis: client, groupId: 'bad id', rank: 0, worldSize: 1 }), { code: 'INVALID_GROUP_ID' });
  t.throws(() => new RedisProcessGroup({ redis: client, groupId: 'x', rank: 0, worldSize: 0 }), { code: 'DCP_VALUE_ERROR' });
});

t.test('works on a 3-master Redis Cluster (one slot per group)', async (t) => {
  const cluster = await RedisClusterFixture.start(3);
  t.teardown(() => cluster.stop());
  const client = cluster.client();
  const groups = [0, 1, 2].map((rank) => new RedisProcessGroup({ redis: client, groupId: 'clustered', rank, worldSize: 3, timeoutMs: 5000 }));
  const all = await Promise.all(groups.map((g) => g.allGather(g.rank + 1)));
  t.same(all, [[1, 2, 3], [1, 2, 3], [1, 2, 3]]);
  await Promise.all(groups.map((g) => g.close()));
});
