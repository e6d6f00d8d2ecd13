/**
 * redis-dcp: PyTorch Distributed Checkpoint's storage layer on Redis.
 * Every public name is exported from here.
 */
import { registerStorageBackend } from './core/storage-registry.js';
import { parseCheckpointId } from './redis/checkpoint-id.js';
import { RedisStorageReader } from './redis/reader.js';
import { RedisStorageWriter } from './redis/writer.js';

export * from './core/index.js';
export type { ProcessGroup } from './group/process-group.js';
export { createLocalGroups, type LocalGroupOptions } from './group/local-group.js';
export { RedisProcessGroup, type RedisProcessGroupOptions } from './group/redis-process-group.js';
export * from './redis/index.js';
export type { WorkerRecipe, ThreadPortable, GroupContext } from './async/recipe.js';

// Automatic storage selection: save/load with only `checkpointId: "redis://host:port/db/name"`.
registerStorageBackend({
  name: 'redis',
  validateCheckpointId: (id) => {
    try {
      return parseCheckpointId(id).url !== undefined;
    } catch {
      return false;
    }
  },
  createWriter: (id) => new RedisStorageWriter({ checkpointId: id }),
  createReader: (id) => new RedisStorageReader({ checkpointId: id }),
});
