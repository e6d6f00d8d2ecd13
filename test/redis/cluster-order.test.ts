/**
 * The order of a Cluster save's writes and a load's reads (writer option clusterWriteOrder, reader
 * option clusterReadOrder; src/redis/cluster-bulk.ts orderByNode): 'by-node' (default) goes master
 * after master, each rank starting at its own, with the standalone in-flight limit; 'by-key'
 * spreads the requests over every master at once. Both save and load bit for bit.
 * docs/performance.md, "Redis Cluster" and "Session 8".
 */
import t, { type Test } from 'tap';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { ClusterBulk, masterOf, orderByNode } from '../../src/redis/cluster-bulk.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisClusterFixture } from '../helpers/redis-server.js';

t.test('orderByNode: each node\'s items together in their given order, nodes in name order from the start-th', async (t) => {
  const nodeOf = (key: string) => key.split('/')[0]!;
  const groups = ['b/1', 'a/1', 'c/1', 'b/2', 'a/2', 'b/3', 'c/2'];
  const keys = (start: number) => orderByNode(groups, nodeOf, start);
  t.same(keys(0), ['a/1', 'a/2', 'b/1', 'b/2', 'b/3', 'c/1', 'c/2']);
  t.same(keys(1), ['b/1', 'b/2', 'b/3', 'c/1', 'c/2', 'a/1', 'a/2']);
  t.same(keys(2), ['c/1', 'c/2', 'a/1', 'a/2', 'b/1', 'b/2', 'b/3']);
  t.same(keys(4), keys(1), 'the start wraps around the nodes (rank mod masters)');
  t.same(orderByNode([], nodeOf, 3), [], 'no groups');
  t.same(orderByNode(groups.slice(0, 1), nodeOf, 5), ['b/1'], 'one node');
});

t.test('clusterReadOrder and clusterWriteOrder are validated', async (t) => {
  t.throws(() => new RedisStorageReader({ clusterReadOrder: 'random' as never }), { code: 'DCP_VALUE_ERROR', message: /^clusterReadOrder must be 'by-node' or 'by-key'/ });
  t.throws(() => new RedisStorageWriter({ clusterWriteOrder: 'random' as never }), { code: 'DCP_VALUE_ERROR', message: /^clusterWriteOrder must be 'by-node' or 'by-key'/ });
  t.doesNotThrow(() => new RedisStorageReader({ clusterReadOrder: 'by-key' }));
  t.doesNotThrow(() => new RedisStorageWriter({ clusterWriteOrder: 'by-key' }));
});

t.test('on a 3-master cluster', async (t) => {
  const fixture = await RedisClusterFixture.start(3);
  t.teardown(() => fixture.stop());
  const cluster = fixture.client();
  const n = (6 * 2 ** 20) / 4;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = ((i * 2654435761) % 1_000_003) / 7;
  const source: StateDict = { w: new Tensor('float32', [n], w), step: 7 };
  const segmentBytes = 64 * 1024 - 64;
  await cluster.ping(); // connected: its slot map is known
  const masters = cluster.nodes('master').map((m) => `${m.options.host}:${m.options.port}`).sort();
  t.equal(masters.length, 3);

  // Every bulk SET and GETRANGE, per transport (one per writer or reader): the master it went to, and how many were in flight.
  const requests = new Map<ClusterBulk, string[]>();
  let inFlight = 0;
  let mostInFlight = 0;
  const record = <K extends 'set' | 'getRangeInto'>(name: K) => {
    const original = ClusterBulk.prototype[name] as (this: ClusterBulk, key: string, ...rest: unknown[]) => Promise<unknown>;
    (ClusterBulk.prototype as unknown as Record<string, unknown>)[name] = async function (this: ClusterBulk, key: string, ...rest: unknown[]) {
      const list = requests.get(this) ?? [];
      requests.set(this, list);
      list.push(masterOf(cluster, key));
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        return await original.call(this, key, ...rest);
      } finally {
        inFlight--;
      }
    };
    t.teardown(() => {
      (ClusterBulk.prototype as unknown as Record<string, unknown>)[name] = original;
    });
  };
  record('set');
  record('getRangeInto');
  const reset = () => {
    requests.clear();
    mostInFlight = 0;
  };
  const runsOf = (nodes: readonly string[]) => nodes.filter((node, i) => i === 0 || nodes[i - 1] !== node);
  const only = (t: Test) => {
    t.equal(requests.size, 1, 'one bulk transport');
    return [...requests.values()][0]!;
  };
  const saveOnce = async (t: Test, options: Omit<ConstructorParameters<typeof RedisStorageWriter>[0] & object, 'redis'>) => {
    reset();
    await save(source, { checkpointId: 'order/a', storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes, ...options }) });
    return only(t);
  };
  const loadOnce = async (t: Test, options: Omit<ConstructorParameters<typeof RedisStorageReader>[0] & object, 'redis'>) => {
    reset();
    const dest: StateDict = { w: new Tensor('float32', [n]), step: 0 };
    await load(dest, { checkpointId: 'order/a', storageReader: new RedisStorageReader({ redis: cluster, ...options }) });
    t.ok(Buffer.from((dest.w as Tensor).bytes).equals(Buffer.from(w.buffer)) && dest.step === 7, 'loaded bit for bit');
    return only(t);
  };

  t.test("saves 'by-node' (default): master after master from the first, at most 4 writes in flight", async (t) => {
    const nodes = await saveOnce(t, { maxInFlight: 1 });
    t.ok(nodes.length > 30, `${nodes.length} segments written`);
    t.same(runsOf(nodes), masters, 'one run per master, in name order');
    await saveOnce(t, {});
    t.ok(mostInFlight <= 4 && mostInFlight > 1, `the standalone default of 4 in flight (at most ${mostInFlight})`);
    await loadOnce(t, { clusterReadOrder: 'by-key' });
  });

  t.test("saves 'by-key': the masters interleaved, 8 in flight by default", async (t) => {
    const nodes = await saveOnce(t, { clusterWriteOrder: 'by-key', maxInFlight: 1 });
    t.ok(runsOf(nodes).length > 3, `the writes go back and forth between masters (${runsOf(nodes).length} runs in ${nodes.length} writes)`);
    await saveOnce(t, { clusterWriteOrder: 'by-key' });
    t.ok(mostInFlight > 4, `up to 8 in flight (at most ${mostInFlight})`);
    await loadOnce(t, {});
  });

  t.test("incremental saves: each claimed batch of pieces written master after master ('by-node'), interleaved ('by-key')", async (t) => {
    const fresh = (seed: number): StateDict => {
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = ((i * 2654435761 + seed * 97) % 1_000_003) / 11;
      return { w: new Tensor('float32', [n], data), step: seed };
    };
    const runs: Record<string, { runs: number; writes: number }> = {};
    for (const [seed, clusterWriteOrder] of [[1, 'by-node'], [2, 'by-key']] as const) {
      reset();
      const sd = fresh(seed);
      await save(sd, { checkpointId: `order/inc-${clusterWriteOrder}`, storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes, incremental: true, maxInFlight: 1, clusterWriteOrder }) });
      const nodes = only(t);
      runs[clusterWriteOrder] = { runs: runsOf(nodes).length, writes: nodes.length };
      const dest: StateDict = { w: new Tensor('float32', [n]), step: 0 };
      await load(dest, { checkpointId: `order/inc-${clusterWriteOrder}`, storageReader: new RedisStorageReader({ redis: cluster }) });
      t.ok(Buffer.from((dest.w as Tensor).bytes).equals(Buffer.from((sd.w as Tensor).bytes)), `${clusterWriteOrder}: loaded bit for bit`);
      await new CheckpointCatalog({ redis: cluster }).delete(`order/inc-${clusterWriteOrder}`);
    }
    // Batches of at most 64 pieces (piece-writer.ts): by node, at most one run per master in each.
    const byNode = runs['by-node']!;
    t.ok(byNode.writes > 64 && byNode.runs <= 3 * Math.ceil(byNode.writes / 64), `'by-node': ${byNode.runs} runs in ${byNode.writes} piece writes`);
    t.ok(runs['by-key']!.runs > 3 * Math.ceil(runs['by-key']!.writes / 64), `'by-key': ${runs['by-key']!.runs} runs in ${runs['by-key']!.writes} piece writes`);
  });

  t.test("loads 'by-node' (default): master after master from the first, at most 4 reads in flight", async (t) => {
    const nodes = await loadOnce(t, { maxInFlight: 1 });
    t.same(runsOf(nodes), masters, `one run per master, in name order (${nodes.length} reads)`);
    await loadOnce(t, {});
    t.ok(mostInFlight <= 4 && mostInFlight > 1, `the standalone default of 4 in flight (at most ${mostInFlight})`);
  });

  t.test("loads 'by-key': the masters interleaved, 8 in flight by default", async (t) => {
    const nodes = await loadOnce(t, { clusterReadOrder: 'by-key', maxInFlight: 1 });
    t.ok(runsOf(nodes).length > 3, `the reads go back and forth between masters (${runsOf(nodes).length} runs in ${nodes.length} reads)`);
    await loadOnce(t, { clusterReadOrder: 'by-key' });
    t.ok(mostInFlight > 4, `up to 8 in flight (at most ${mostInFlight})`);
  });

  t.test("'by-node' with 3 ranks: each rank's writes and reads start on a different master", async (t) => {
    // Rows sharded over 3 ranks: each rank writes its own block.
    const rows = 48;
    const cols = n / rows;
    const shard = (rank: number, fill: boolean) => {
      const block = new Tensor('float32', [rows / 3, cols]);
      if (fill) block.data.set(w.subarray((rank * rows * cols) / 3, ((rank + 1) * rows * cols) / 3));
      return { m: new ShardedTensor([rows, cols], 'float32', [{ offsets: [(rank * rows) / 3, 0], tensor: block }]) };
    };
    reset();
    const saving = createLocalGroups(3);
    await Promise.all(saving.map((processGroup, rank) => save(shard(rank, true), { checkpointId: 'order/ranks', processGroup, storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes, maxInFlight: 1 }) })));
    const writes = [...requests.values()];
    t.equal(writes.length, 3, 'a transport per rank');
    for (const nodes of writes) t.equal(runsOf(nodes).length, 3, 'each rank writes master after master');
    t.same(writes.map((nodes) => nodes[0]).sort(), masters, 'the ranks start writing on three different masters');

    reset();
    const loading = createLocalGroups(3);
    const dests = [0, 1, 2].map((rank) => shard(rank, false));
    await Promise.all(loading.map((processGroup, rank) => load(dests[rank]!, { checkpointId: 'order/ranks', processGroup, storageReader: new RedisStorageReader({ redis: cluster, maxInFlight: 1 }) })));
    t.ok(dests.every((d, rank) => Buffer.from(d.m.localShards[0]!.tensor.bytes).equals(Buffer.from(shard(rank, true).m.localShards[0]!.tensor.bytes))), 'every rank loaded its block bit for bit');
    const reads = [...requests.values()];
    t.equal(reads.length, 3);
    for (const nodes of reads) t.equal(runsOf(nodes).length, 3, 'each rank reads master after master');
    t.same(reads.map((nodes) => nodes[0]).sort(), masters, 'the ranks start reading on three different masters');
    await new CheckpointCatalog({ redis: cluster }).delete('order/ranks');
  });

  t.test('the store agrees after the saves and loads', async (t) => {
    await assertStoreAgrees(t, { redis: cluster, expect: { 'order/a': committed(source) } });
  });
});
