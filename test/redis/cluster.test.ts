import t from 'tap';
import type { Redis } from 'ioredis';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { RedisClusterFixture } from '../helpers/redis-server.js';

const cluster = await RedisClusterFixture.start(3);
const client = cluster.client();
t.teardown(() => cluster.stop());

t.test('save, load with resharding, validate, list and delete on a 3-master cluster', async (t) => {
  const world = 2;
  const groups = createLocalGroups(world, { timeoutMs: 20_000 });
  const value = (i: number) => (i * 7) % 1013;
  await Promise.all(
    groups.map((group, rank) => {
      const data = Float64Array.from({ length: 50_000 }, (_, i) => value(rank * 50_000 + i));
      const w = new ShardedTensor([100_000], 'float64', [{ offsets: [rank * 50_000], tensor: new Tensor('float64', [50_000], data) }]);
      return save({ w, note: 'clustered' }, { checkpointId: 'cl/one', storageWriter: new RedisStorageWriter({ redis: client, segmentBytes: 64 * 1024 }), processGroup: group });
    }),
  );
  // Data segments spread over every master.
  const masters = client.nodes('master') as Redis[];
  const perNode = await Promise.all(masters.map(async (node) => (await node.keys('dcp:data:*')).length));
  t.equal(perNode.length, 3);
  t.ok(perNode.every((n) => n > 0), `segments on every master: ${perNode.join(', ')}`);

  const dests = [0, 1, 2].map((rank) => {
    const start = Math.floor((100_000 * rank) / 3);
    const end = Math.floor((100_000 * (rank + 1)) / 3);
    return { w: new ShardedTensor([100_000], 'float64', [{ offsets: [start], tensor: new Tensor('float64', [end - start]) }]), note: '' };
  });
  const loadGroups = createLocalGroups(3, { timeoutMs: 20_000 });
  await Promise.all(loadGroups.map((group, rank) => load(dests[rank]!, { checkpointId: 'cl/one', storageReader: new RedisStorageReader({ redis: client }), processGroup: group })));
  for (const d of dests) {
    const shard = d.w.localShards[0]!;
    const data = shard.tensor.data as Float64Array;
    t.ok(data.every((v, i) => v === value(shard.offsets[0]! + i)), 'every element');
    t.equal(d.note, 'clustered');
  }
  const catalog = new CheckpointCatalog({ redis: client });
  t.same((await catalog.list()).items.map((i) => [i.id, i.state]), [['cl/one', 'committed']]);
  t.same(await catalog.validate('cl/one', { deep: true }), { ok: true, problems: [] });
  await catalog.delete('cl/one');
  const left = await Promise.all(masters.map((node) => node.keys('*cl/one*')));
  t.same(left.flat(), [], 'no key left on any master');
  await catalog.close();
});
