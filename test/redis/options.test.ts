/** Options are validated the same way everywhere: a bad value is a DcpValueError naming the option; aliases keep working. */
import t from 'tap';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
t.teardown(() => server.stop());
const redis = server.client();

t.test('a bad option value is a DcpValueError naming the option, in the writer, reader, catalog and groups alike', async (t) => {
  const bad: Array<[string, () => unknown]> = [
    ['maxInFlight', () => new RedisStorageWriter({ maxInFlight: 0 })],
    ['maxInFlight', () => new RedisStorageReader({ maxInFlight: 0 })],
    ['maxInFlight', () => new RedisStorageReader({ maxInFlight: 2.5 })],
    ['bulkConnections', () => new RedisStorageWriter({ bulkConnections: 17 })],
    ['bulkConnections', () => new RedisStorageReader({ bulkConnections: 17 })],
    ['maxMetadataBytes', () => new RedisStorageReader({ maxMetadataBytes: -1 })],
    ['segmentBytes', () => new RedisStorageWriter({ segmentBytes: 0 })],
    ['chunkBytes', () => new RedisStorageWriter({ chunkBytes: 1.5 })],
    ['lockTtlMs', () => new RedisStorageWriter({ lockTtlMs: 0 })],
    ['lockWaitMs', () => new RedisStorageWriter({ lockWaitMs: -5 })],
    ['lockTtlMs', () => new CheckpointCatalog({ redis, lockTtlMs: 0 })],
    ['recycleTtlMs', () => new CheckpointCatalog({ redis, recycleTtlMs: -1 })],
    ['worldSize', () => createLocalGroups(0)],
    ['timeoutMs', () => createLocalGroups(2, { timeoutMs: 0 })],
  ];
  for (const [name, make] of bad) t.throws(make, { code: 'DCP_VALUE_ERROR', message: new RegExp(`^${name} must be`) }, name);
  t.throws(() => new RedisStorageWriter({ segmentBytes: 1000, chunkBytes: 2000 }), { code: 'DCP_VALUE_ERROR', message: /chunkBytes/ });
});

t.test('segmentBytes sets the segment size; chunkBytes is its deprecated alias', async (t) => {
  const w = new Tensor('float32', [10_000], new Float32Array(10_000).fill(1)); // 40,000 bytes
  for (const [id, options] of [
    ['opt/segment', { segmentBytes: 16_000 }],
    ['opt/chunk', { chunkBytes: 16_000 }],
    ['opt/default', {}],
  ] as const) {
    await save({ w }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, ...options }) });
  }
  t.equal((await redis.keys('dcp:data:opt/segment:*')).length, 3, 'segmentBytes 16,000: two full segments and the tail');
  t.equal((await redis.keys('dcp:data:opt/chunk:*')).length, 3, 'chunkBytes: the same');
  t.equal((await redis.keys('dcp:data:opt/default:*')).length, 1, 'default 4 MiB − 64 B: one segment');
});
