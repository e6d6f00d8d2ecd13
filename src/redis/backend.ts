/**
 * The Redis backend of DCP's automatic storage selection: `save`/`load` given only a
 * checkpointId ask it through RedisStorageWriter.validateCheckpointId, the same function
 * a caller uses. The package root registers it explicitly (src/index.ts, README "Automatic
 * storage selection").
 */
import { DcpValueError } from '../core/errors.js';
import type { StorageBackend } from '../core/storage-registry.js';
import { parseCheckpointId } from './checkpoint-id.js';
import { RedisStorageReader } from './reader.js';
import { RedisStorageWriter } from './writer.js';

/** A bare id names no server: selection by id alone needs redis://host:port/db/name. */
function assertLocatesServer(checkpointId: string): void {
  if (parseCheckpointId(checkpointId).url === undefined) {
    throw new DcpValueError(
      'NO_STORAGE',
      `Checkpoint id ${JSON.stringify(checkpointId)} names no Redis server: pass a storageWriter/storageReader, or use an id of the form redis://host:port/<db>/<name>`,
    );
  }
}

export const redisStorageBackend: StorageBackend = {
  name: 'redis',
  validateCheckpointId: (checkpointId) => RedisStorageWriter.validateCheckpointId(checkpointId),
  createWriter: (checkpointId) => {
    assertLocatesServer(checkpointId);
    return new RedisStorageWriter({ checkpointId });
  },
  createReader: (checkpointId) => {
    assertLocatesServer(checkpointId);
    return new RedisStorageReader({ checkpointId });
  },
};
