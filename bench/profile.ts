/**
 * One in-process save and load (world size 1, no process group) of the synthetic state
 * dict, with per-step timings: the loop to profile the library's hot paths.
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/profile.ts [--bytes 256MiB] [--cold] [--bulk-connections N]
 * Steady by default (save A, delete A, then save B and load B are timed); --cold
 * times the first save into the freshly started redis-server.
 */
import { parseArgs } from 'node:util';
import { save } from '../src/core/save.js';
import { load } from '../src/core/load.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { RedisStorageReader } from '../src/redis/reader.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { parseBytes } from './args.js';
import { usedMemory } from './baselines.js';
import { startOwnRedis } from './redis-target.js';
import { makeLayout, makeRankStateDict, verifyRankStateDict } from './synthetic.js';
import { TimedStorageReader, TimedStorageWriter } from './timed-storage.js';

const { values } = parseArgs({
  options: {
    bytes: { type: 'string', default: '256MiB' },
    items: { type: 'string', default: '1000' },
    cold: { type: 'boolean', default: false },
    'chunk-bytes': { type: 'string' },
    'max-in-flight': { type: 'string' },
    'bulk-connections': { type: 'string' },
  },
});
const layout = makeLayout({ totalBytes: parseBytes(values.bytes!), smallItems: Number(values.items) });
const writerOptions = {
  prefix: 'prof',
  overwrite: true,
  ...(values['chunk-bytes'] ? { chunkBytes: parseBytes(values['chunk-bytes']) } : {}),
  ...(values['max-in-flight'] ? { maxInFlight: Number(values['max-in-flight']) } : {}),
  ...(values['bulk-connections'] ? { bulkConnections: Number(values['bulk-connections']) } : {}),
};
const fmt = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ');

const target = await startOwnRedis();
try {
  const redis = target.redis;
  const { stateDict } = makeRankStateDict(layout, 1, 0, true);
  if (!values.cold) {
    await save(stateDict, { storageWriter: new RedisStorageWriter({ redis, ...writerOptions }), checkpointId: 'prof/a' });
    await new CheckpointCatalog({ redis, prefix: 'prof' }).delete('prof/a');
  }
  const before = await usedMemory(redis);
  const writer = new TimedStorageWriter(new RedisStorageWriter({ redis, ...writerOptions }));
  let t0 = performance.now();
  await save(stateDict, { storageWriter: writer, checkpointId: 'prof/b' });
  let ms = performance.now() - t0;
  const growth = (await usedMemory(redis)) - before;
  console.log(`save ${(layout.totalBytes / ms / 1e6).toFixed(2)} GB/s (${ms.toFixed(0)} ms; ${fmt(writer.times.ms)}); used_memory growth / payload ${(growth / layout.totalBytes).toFixed(4)}`);

  const dest = makeRankStateDict(layout, 1, 0, false).stateDict;
  const reader = new TimedStorageReader(new RedisStorageReader({ redis, prefix: 'prof', ...(values['bulk-connections'] ? { bulkConnections: Number(values['bulk-connections']) } : {}) }));
  t0 = performance.now();
  await load(dest, { storageReader: reader, checkpointId: 'prof/b' });
  ms = performance.now() - t0;
  const v = verifyRankStateDict(layout, dest, 1, 0);
  console.log(`load ${(layout.totalBytes / ms / 1e6).toFixed(2)} GB/s (${ms.toFixed(0)} ms; ${fmt(reader.times.ms)}); verified ${v.mismatchedWords === 0 && v.problems.length === 0} ${v.problems.join('; ')}`);
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB for ${(layout.totalBytes / 2 ** 20).toFixed(0)} MiB of state dict (two copies: source and destination)`);
} finally {
  await target.stop();
}
