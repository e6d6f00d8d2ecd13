import t from 'tap';
import * as api from '../src/index.js';

t.test('every public name of the contract is exported from the package root', async (t) => {
  const values = [
    'Tensor', 'ShardedTensor', 'WriteItemType', 'LoadItemType', 'StorageWriter', 'StorageReader',
    'DefaultSavePlanner', 'DefaultLoadPlanner', 'save', 'load', 'CheckpointError', 'createLocalGroups',
    'RedisProcessGroup', 'RedisStorageWriter', 'RedisStorageReader', 'CheckpointCatalog', 'metadataToJSON', 'metadataFromJSON',
  ];
  for (const name of values) t.ok((api as Record<string, unknown>)[name] !== undefined, name);
  t.equal(api.WriteItemType.BYTE_IO, 'BYTE_IO');
  t.equal(api.RedisStorageWriter.validateCheckpointId('redis://127.0.0.1:6379/0/run1/step-100'), true);
  t.equal(api.RedisStorageWriter.validateCheckpointId('run1/step-100'), true);
  t.equal(api.RedisStorageWriter.validateCheckpointId('run 1'), false);
  t.equal(api.RedisStorageReader.validateCheckpointId('redis://h:1/0/../x'), false);
});
