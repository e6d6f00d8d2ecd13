/**
 * The package's public surface, imported the way users import it: `redis-dcp` and
 * `redis-dcp/internal` resolved by Node from package.json "exports" into the built dist/
 * (`npm test` builds first). Every name the README imports and every pinned name must be
 * there; internals must not leak into the root.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import t from 'tap';

const root = new URL('..', import.meta.url);

/** The export names of a specifier, as a fresh Node process sees them. */
function exportsOf(specifier: string): string[] {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m)));`], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

/** Value names imported from 'redis-dcp' in the README's code blocks. */
function readmeImports(): string[] {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const names = new Set<string>();
  for (const m of readme.matchAll(/import\s*\{([^}]*)\}\s*from\s*'redis-dcp'/g)) {
    for (const part of m[1]!.split(',')) {
      const name = part.trim();
      if (name && !name.startsWith('type ')) names.add(name);
    }
  }
  return [...names];
}

const PINNED = [
  'Tensor', 'ShardedTensor', 'WriteItemType', 'LoadItemType', 'StorageWriter', 'StorageReader',
  'DefaultSavePlanner', 'DefaultLoadPlanner', 'save', 'load', 'createLocalGroups', 'RedisProcessGroup',
  'RedisStorageWriter', 'RedisStorageReader', 'CheckpointCatalog', 'metadataToJSON', 'metadataFromJSON',
  'DcpError', 'DcpValueError', 'CheckpointError', 'InvalidCheckpointIdError', 'RemoteRankError', 'CollectiveTimeoutError',
  'CheckpointNotFoundError', 'CheckpointNotCommittedError', 'CheckpointExistsError', 'CheckpointLockedError',
  'LockUnavailableError', 'FencedError', 'ChecksumMismatchError', 'MissingDataError', 'ERROR_CODES', 'EXIT_CODES',
  'DEFAULT_SEGMENT_BYTES', 'DEFAULT_PREFIX', 'STORAGE_FORMAT', 'INCREMENTAL_STORAGE_FORMAT', 'checkServer', 'parseCheckpointId', 'isRedisCheckpointId',
  'checkpointIdProblem', 'isValidCheckpointName', 'assertValidCheckpointName', 'CHECKPOINT_ID_MAX_LENGTH',
  'asyncSave', 'DefaultStager', 'waitForPendingSave',
  'CheckpointManager', 'applyRetention', 'CheckpointInUseError', 'InsufficientMemoryError', 'DEFAULT_PIN_TTL_MS',
  'SAVE_CHANNEL', 'LOAD_CHANNEL', 'DELETE_CHANNEL', 'PROGRESS_INTERVAL_MS', 'reportTransferred', 'createMetrics', 'DCP_METRIC_NAMES',
];

const INTERNAL_ONLY = ['findOverlappingChunks', 'formatSize', 'setOwn', 'errorToWire', 'errorFromWire', 'KeySpace', 'CheckpointKeys', 'flattenStateDict', 'copyBoxInto'];

t.test('the built package root exports every README and pinned name, and no internals', async (t) => {
  const rootNames = new Set(exportsOf('redis-dcp'));
  const documented = readmeImports();
  t.ok(documented.length >= 5, `the README imports names from redis-dcp (${documented.join(', ')})`);
  for (const name of [...documented, ...PINNED]) t.ok(rootNames.has(name), `redis-dcp exports ${name}`);
  for (const name of INTERNAL_ONLY) t.notOk(rootNames.has(name), `${name} is not part of the public root`);
  t.ok(rootNames.size < 110, `the root is an explicit, bounded list (${rootNames.size} names)`);
});

t.test('redis-dcp/internal has the internals (and the public names)', async (t) => {
  const names = new Set(exportsOf('redis-dcp/internal'));
  for (const name of [...INTERNAL_ONLY, 'save', 'RedisStorageWriter']) t.ok(names.has(name), `redis-dcp/internal exports ${name}`);
});

t.test('one function decides which ids the Redis backend takes, for writers, readers and automatic selection', async (t) => {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { RedisStorageWriter, RedisStorageReader, redisStorageBackend, save } from 'redis-dcp';
       const ids = ['redis://127.0.0.1:6379/0/run1/step-100', 'run1/step-100', 'run 1', 'redis://h:1/0/../x', 'file:///tmp/x', ''];
       const rows = ids.map((id) => [RedisStorageWriter.validateCheckpointId(id), RedisStorageReader.validateCheckpointId(id), redisStorageBackend.validateCheckpointId(id)]);
       let bare;
       try { await save({}, { checkpointId: 'run1/step-100' }); } catch (e) { bare = [e.code, e.message]; }
       console.log(JSON.stringify({ rows, bare }));`,
    ],
    { cwd: root, encoding: 'utf8' },
  );
  const { rows, bare } = JSON.parse(out) as { rows: boolean[][]; bare: [string, string] };
  t.same(rows, [
    [true, true, true],
    [true, true, true],
    [false, false, false],
    [false, false, false],
    [false, false, false],
    [false, false, false],
  ]);
  t.equal(bare[0], 'NO_STORAGE', 'a bare id alone names no server: a typed error, not a connection attempt');
  t.match(bare[1], /redis:\/\/host:port/);
});
