/**
 * An incremental save whose memory pre-flight ran (Redis has a maxmemory) hashes each piece
 * once: writeData reuses the ids prepareLocalPlan computed for the very same byte views
 * (counted with piecesHashed). Items the planner hands writeData as other views (a tensor
 * replaced in the state dict, a JSON value) are hashed again, so the save stores what writeData
 * saw; bytes changed in place after planning are never stored under an id they do not hash to.
 */
import t from 'tap';
import { save } from '../../src/core/save.js';
import { DefaultSavePlanner } from '../../src/core/default-planner.js';
import type { SavePlan, SavePlanner, WriteData, WriteItem } from '../../src/core/planner.js';
import type { WriteResult } from '../../src/core/storage.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageWriter, type RedisStorageWriterOptions } from '../../src/redis/writer.js';
import { piecesHashed } from '../../src/redis/piece-cache.js';
import { pieceProblem } from '../../src/redis/pieces.js';
import { segmentSizes } from '../../src/redis/segment-layout.js';
import { assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { failureOf } from '../helpers/rank-results.js';
import { RedisServer } from '../helpers/redis-server.js';
import { incrementalStateDict, seededTensor } from '../fixtures/incremental-data.js';

const server = await RedisServer.start({ args: ['--maxmemory', '256mb', '--maxmemory-policy', 'noeviction'] });
const redis = server.client();
const catalog = new CheckpointCatalog({ redis });
t.teardown(async () => {
  await catalog.close();
  await server.stop();
});

const [ROWS, COLS] = [256, 1024]; // 1 MiB tensors
const SEEDS = [1, 2, 3, 4];
const segmentBytes = 64 * 1024 - 64;
const TENSOR_PIECES = SEEDS.length * segmentSizes(ROWS * COLS * 4, segmentBytes).length;
const options = (more: Partial<RedisStorageWriterOptions> = {}): RedisStorageWriterOptions => ({ redis, incremental: true, segmentBytes, ...more });

/** Pieces hashed for their id while `run` ran. */
async function hashedDuring(run: () => Promise<unknown>): Promise<number> {
  const before = piecesHashed();
  await run();
  return piecesHashed() - before;
}

/** A planner that hands out a fresh copy of every tensor: writeData never sees the pre-flight's views. */
class CopyingPlanner extends DefaultSavePlanner {
  override resolveData(item: WriteItem): WriteData {
    const data = super.resolveData(item);
    return data instanceof Tensor ? new Tensor(data.dtype, data.shape, data.data.slice()) : data;
  }
}

/** A writer that runs `between` (given the planner) after planning, right before writeData. */
class ChangingWriter extends RedisStorageWriter {
  constructor(options: RedisStorageWriterOptions, private readonly between: (planner: SavePlanner) => void) {
    super(options);
  }

  override async writeData(plan: SavePlan, planner: SavePlanner): Promise<WriteResult[]> {
    this.between(planner);
    return super.writeData(plan, planner);
  }
}

/** Stored pieces whose bytes do not hash to their name. */
async function misnamedPieces(): Promise<string[]> {
  const out: string[] = [];
  for (const key of await redis.keys('dcp:blob:*')) {
    const problem = pieceProblem(key.slice('dcp:blob:'.length), (await redis.getBuffer(key))!);
    if (problem) out.push(problem);
  }
  return out;
}

t.test('with the memory pre-flight each piece is hashed once: writeData reuses the ids of the same byte views', async (t) => {
  const sd = incrementalStateDict(SEEDS, ROWS, COLS, 1);
  const once = await hashedDuring(() => save(sd, { checkpointId: 'h/a', storageWriter: new RedisStorageWriter(options()) }));
  // The step is a JSON value, encoded anew for writeData (another view): hashed by both passes.
  t.equal(once, TENSOR_PIECES + 2, `${TENSOR_PIECES} tensor pieces hashed once (the step twice): ${once}`);
  const unchanged = await hashedDuring(() => save(sd, { checkpointId: 'h/b', storageWriter: new RedisStorageWriter(options()) }));
  t.equal(unchanged, TENSOR_PIECES + 2, `unchanged, saved again: hashed once too (${unchanged})`);
  t.ok((await catalog.get('h/b')).storedBytes < 64, 'and stored (almost) nothing');
  const noPreflight = await hashedDuring(() => save(sd, { checkpointId: 'h/c', storageWriter: new RedisStorageWriter(options({ memoryCheck: false })) }));
  t.equal(noPreflight, TENSOR_PIECES + 1, `without the pre-flight writeData alone hashes (${noPreflight})`);
  const copies = await hashedDuring(() => save(sd, { checkpointId: 'h/d', planner: new CopyingPlanner(), storageWriter: new RedisStorageWriter(options()) }));
  t.equal(copies, 2 * TENSOR_PIECES + 2, `items writeData sees as other views are hashed again (${copies})`);
  const strict = await hashedDuring(() => save(sd, { checkpointId: 'h/e', storageWriter: new RedisStorageWriter(options({ pieceIdCache: false })) }));
  t.equal(strict, TENSOR_PIECES + 2, `pieceIdCache: false (BLAKE3 only): the pre-flight's ids are reused as well (${strict})`);
  await assertStoreAgrees(t, { redis, expect: Object.fromEntries(['h/a', 'h/b', 'h/c', 'h/d', 'h/e'].map((id) => [id, committed(sd)])) });
  for (const id of ['h/a', 'h/b', 'h/c', 'h/d', 'h/e']) await catalog.delete(id);
  t.same(await redis.keys('dcp:blob*'), [], 'no piece left');
});

t.test('a tensor, raw bytes and a value replaced between planning and writing: the save stores what writeData saw', async (t) => {
  const base: StateDict = { ...incrementalStateDict(SEEDS, ROWS, COLS, 1), blob: new Uint8Array(100_000).fill(1) };
  await save(base, { checkpointId: 'chg/base', storageWriter: new RedisStorageWriter(options()) });
  const seen: StateDict = { ...base, t0: seededTensor(ROWS, COLS, 50), blob: new Uint8Array(100_000).fill(2), step: 2 };
  // What the planner resolves for writeData (its flattened state dict) now differs from what the pre-flight hashed.
  const writer = new ChangingWriter(options(), (planner) => Object.assign((planner as DefaultSavePlanner).stateDict!, { t0: seen.t0, blob: seen.blob, step: seen.step }));
  await save({ ...base }, { checkpointId: 'chg/a', storageWriter: writer });
  t.ok((await catalog.get('chg/a')).storedBytes >= ROWS * COLS * 4 + 100_000, "the replaced tensor's and bytes' pieces were written");
  await assertStoreAgrees(t, { redis, expect: { 'chg/base': committed(base), 'chg/a': committed(seen) } });
  for (const id of ['chg/base', 'chg/a']) await catalog.delete(id);
});

t.test('bytes changed in place between planning and writing are never stored under an id they do not hash to', async (t) => {
  const original = incrementalStateDict(SEEDS, ROWS, COLS, 1);
  await save(original, { checkpointId: 'inp/base', storageWriter: new RedisStorageWriter(options()) });
  const sd = incrementalStateDict(SEEDS, ROWS, COLS, 1);
  sd.t2 = seededTensor(ROWS, COLS, 60); // new pieces at planning
  const t2 = (sd.t2 as Tensor).data as Float32Array;
  const newChanged = await failureOf(save(sd, { checkpointId: 'inp/a', storageWriter: new ChangingWriter(options(), () => t2.fill(8)) }));
  t.equal(newChanged?.code, 'CHECKSUM_MISMATCH', `new pieces changed in place after planning: the check before each write fails the save (${newChanged?.message?.slice(0, 80)}…)`);
  t.same(await misnamedPieces(), [], 'every stored piece hashes to its name');

  // Pieces Redis held at planning are referenced, not read again: the save keeps the bytes they had then
  // (a state dict must not change while its save runs; docs/format.md "Incremental saves").
  const t1 = (sd.t1 as Tensor).data as Float32Array;
  const atPlanning: StateDict = { ...sd, t1: seededTensor(ROWS, COLS, SEEDS[1]!), t2: new Tensor('float32', [ROWS, COLS], t2.slice()) };
  await save(sd, { checkpointId: 'inp/b', storageWriter: new ChangingWriter(options(), () => t1.fill(7)) });
  t.same(await misnamedPieces(), [], 'every stored piece hashes to its name');

  await save(sd, { checkpointId: 'inp/c', storageWriter: new RedisStorageWriter(options()) });
  await assertStoreAgrees(t, { redis, expect: { 'inp/base': committed(original), 'inp/a': incomplete, 'inp/b': committed(atPlanning), 'inp/c': committed(sd) } });
  for (const id of ['inp/base', 'inp/a', 'inp/b', 'inp/c']) await catalog.delete(id);
  t.same(await redis.keys('dcp:blob*'), [], 'no piece left');
});
