/**
 * Shared setup of the admin API tests: a private redis-server and checkpoints saved by
 * the library itself (single rank and several in-process ranks).
 */
import type { Redis } from 'ioredis';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';

export const TOKEN = 'test-admin-token-0123456789abcdef';

export function floatTensor(values: number[]): Tensor {
  return new Tensor('float32', [values.length], Float32Array.from(values));
}

/** One rank saves `stateDict` under `id`. */
export async function saveSimple(redis: Redis, id: string, stateDict: StateDict = { w: floatTensor([1, 2, 3, 4]) }, prefix?: string): Promise<void> {
  await save(stateDict, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, ...(prefix ? { prefix } : {}) }) });
}

/**
 * Two in-process ranks save a row-sharded 4x3 float32 tensor ("model.weight", rank r
 * holds rows 2r..2r+1), a replicated bias and a JSON step counter.
 */
export async function saveSharded(redis: Redis, id: string): Promise<void> {
  const groups = createLocalGroups(2, { timeoutMs: 10_000 });
  await Promise.all(
    groups.map((group, rank) => {
      const rows = Float32Array.from({ length: 6 }, (_, i) => rank * 6 + i);
      const stateDict: StateDict = {
        model: {
          weight: new ShardedTensor([4, 3], 'float32', [{ tensor: new Tensor('float32', [2, 3], rows), offsets: [rank * 2, 0] }]),
          bias: floatTensor([0.5, 0.25, 0.125]),
        },
        step: 42,
      };
      return save(stateDict, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }), processGroup: group });
    }),
  );
}
