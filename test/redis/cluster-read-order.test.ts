/**
 * The read order of a Cluster load (reader option clusterReadOrder, src/redis/read-parts.ts
 * orderByNode): 'by-node' (default) reads master after master, each rank starting at its own,
 * with the standalone in-flight limit; 'by-key' spreads the reads over every master at once.
 * Both load bit for bit. docs/performance.md, "Redis Cluster".
 */
import t, { type Test } from 'tap';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { ClusterBulk, masterOf } from '../../src/redis/cluster-bulk.js';
import { orderByNode, type FetchGroup } from '../../src/redis/read-parts.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisClusterFixture } from '../helpers/redis-server.js';

const group = (key: string): FetchGroup => ({ key, start: 0, end: 1, uses: [] });

t.test('orderByNode: each node\'s groups together in their given order, nodes in name order from the start-th', async (t) => {
  const nodeOf = (key: string) => key.split('/')[0]!;
  const groups = ['b/1', 'a/1', 'c/1', 'b/2', 'a/2', 'b/3', 'c/2'].map(group);
  const keys = (start: number) => orderByNode(groups, nodeOf, start).map((g) => g.key);
  t.same(keys(0), ['a/1', 'a/2', 'b/1', 'b/2', 'b/3', 'c/1', 'c/2']);
  t.same(keys(1), ['b/1', 'b/2', 'b/3', 'c/1', 'c/2', 'a/1', 'a/2']);
  t.same(keys(2), ['c/1', 'c/2', 'a/1', 'a/2', 'b/1', 'b/2', 'b/3']);
  t.same(keys(4), keys(1), 'the start wraps around the nodes (rank mod masters)');
  t.same(orderByNode([], nodeOf, 3), [], 'no groups');
  t.same(orderByNode(groups.slice(0, 1), nodeOf, 5).map((g) => g.key), ['b/1'], 'one node');
});

t.test('clusterReadOrder is validated', async (t) => {
  t.throws(() => new RedisStorageReader({ clusterReadOrder: 'random' as never }), { code: 'DCP_VALUE_ERROR', message: /^clusterReadOrder must be 'by-node' or 'by-key'/ });
  t.doesNotThrow(() => new RedisStorageReader({ clusterReadOrder: 'by-key' }));
});

t.test('on a 3-master cluster', async (t) => {
  const fixture = await RedisClusterFixture.start(3);
  t.teardown(() => fixture.stop());
  const cluster = fixture.client();
  const n = (6 * 2 ** 20) / 4;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = ((i * 2654435761) % 1_000_003) / 7;
  const source: StateDict = { w: new Tensor('float32', [n], w), step: 7 };
  await save(source, { checkpointId: 'order/a', storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes: 64 * 1024 - 64 }) });
  const masters = cluster.nodes('master').map((m) => `${m.options.host}:${m.options.port}`).sort();
  t.equal(masters.length, 3);

  // Every bulk GETRANGE, per reader's transport: the master it went to, and how many were in flight.
  const reads = new Map<ClusterBulk, string[]>();
  let inFlight = 0;
  let mostInFlight = 0;
  const original = ClusterBulk.prototype.getRangeInto;
  ClusterBulk.prototype.getRangeInto = async function (this: ClusterBulk, ...args: Parameters<typeof original>) {
    const list = reads.get(this) ?? [];
    reads.set(this, list);
    list.push(masterOf(cluster, args[0]));
    mostInFlight = Math.max(mostInFlight, ++inFlight);
    try {
      return await original.apply(this, args);
    } finally {
      inFlight--;
    }
  };
  t.teardown(() => {
    ClusterBulk.prototype.getRangeInto = original;
  });
  const runsOf = (nodes: readonly string[]) => nodes.filter((node, i) => i === 0 || nodes[i - 1] !== node);
  const loadOnce = async (t: Test, options: ConstructorParameters<typeof RedisStorageReader>[0]) => {
    reads.clear();
    mostInFlight = 0;
    const dest: StateDict = { w: new Tensor('float32', [n]), step: 0 };
    await load(dest, { checkpointId: 'order/a', storageReader: new RedisStorageReader({ redis: cluster, ...options }) });
    t.ok(Buffer.from((dest.w as Tensor).bytes).equals(Buffer.from(w.buffer)) && dest.step === 7, 'loaded bit for bit');
    t.equal(reads.size, 1, 'one bulk transport');
    return [...reads.values()][0]!;
  };

  t.test("'by-node' (default): master after master from the first, at most 4 reads in flight", async (t) => {
    const nodes = await loadOnce(t, { maxInFlight: 1 });
    t.same(runsOf(nodes), masters, `one run per master, in name order (${nodes.length} reads)`);
    await loadOnce(t, {});
    t.ok(mostInFlight <= 4 && mostInFlight > 1, `the standalone default of 4 in flight (at most ${mostInFlight})`);
  });

  t.test("'by-key': the masters interleaved, 8 in flight by default", async (t) => {
    const nodes = await loadOnce(t, { clusterReadOrder: 'by-key', maxInFlight: 1 });
    t.ok(runsOf(nodes).length > 3, `the reads go back and forth between masters (${runsOf(nodes).length} runs in ${nodes.length} reads)`);
    await loadOnce(t, { clusterReadOrder: 'by-key' });
    t.ok(mostInFlight > 4, `up to 8 in flight (at most ${mostInFlight})`);
  });

  t.test("'by-node' with 3 ranks: each starts on a different master", async (t) => {
    reads.clear();
    const groups = createLocalGroups(3);
    const dests = groups.map((): StateDict => ({ w: new Tensor('float32', [n]), step: 0 }));
    await Promise.all(groups.map((processGroup, rank) => load(dests[rank]!, { checkpointId: 'order/a', processGroup, storageReader: new RedisStorageReader({ redis: cluster, maxInFlight: 1 }) })));
    t.ok(dests.every((d) => Buffer.from((d.w as Tensor).bytes).equals(Buffer.from(w.buffer))), 'every rank loaded bit for bit');
    const sequences = [...reads.values()];
    t.equal(sequences.length, 3);
    for (const nodes of sequences) t.equal(runsOf(nodes).length, 3, 'each rank reads master after master');
    t.same(sequences.map((nodes) => nodes[0]).sort(), masters, 'the ranks start on three different masters');
  });

  t.test('the store agrees after the loads', async (t) => {
    await assertStoreAgrees(t, { redis: cluster, expect: { 'order/a': committed(source) } });
  });
});
