/**
 * Data keys are removed in UNLINKs of at most UNLINK_BUDGET_BYTES of values each (src/redis/unlink.ts):
 * Redis frees string values in its main thread, so one UNLINK of a whole checkpoint stalled
 * every other client for tens of ms. Seen through MONITOR on a private server: the batches
 * unlinkKeys sends, and those of a writer dropping the save an overwrite replaced.
 */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { byBudget, UNLINK_BUDGET_BYTES, unlinkKeys } from '../../src/redis/unlink.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';

const { redis } = await serverWithCatalog();
const MiB = 1024 * 1024;

/** The UNLINK commands clients sent while `fn` ran (their key lists). */
async function unlinksDuring(fn: () => Promise<unknown>): Promise<string[][]> {
  const monitor = await redis.monitor();
  const seen: string[][] = [];
  let onMarker: () => void = () => {};
  const marker = new Promise<void>((resolve) => (onMarker = resolve));
  monitor.on('monitor', (_time: string, args: string[]) => {
    const name = args[0]?.toLowerCase();
    if (name === 'echo' && args[1] === 'end-of-unlinks') onMarker();
    else if (name === 'unlink') seen.push(args.slice(1));
  });
  try {
    await fn();
    await redis.echo('end-of-unlinks');
    await marker;
  } finally {
    monitor.disconnect();
  }
  return seen;
}

t.test('byBudget: consecutive runs within the budget, an oversized key alone, at most 500 keys a run', async (t) => {
  t.same(byBudget([], [], 10), []);
  t.same(byBudget(['a', 'b', 'c', 'd'], [4, 4, 4, 4], 8), [['a', 'b'], ['c', 'd']]);
  t.same(byBudget(['a', 'b', 'c'], [3, 20, 3], 8), [['a'], ['b'], ['c']]);
  t.same(byBudget(['a', 'b', 'c'], [0, 0, 9], 8), [['a', 'b'], ['c']]);
  const many = Array.from({ length: 1201 }, (_, i) => `k${i}`);
  t.same(byBudget(many, many.map(() => 1), 1e9).map((run) => run.length), [500, 500, 201]);
});

t.test('unlinkKeys frees at most the budget per UNLINK and removes every key', async (t) => {
  const big = Array.from({ length: 40 }, (_, i) => `pace:big:${i}`);
  const small = Array.from({ length: 600 }, (_, i) => `pace:small:${i}`);
  const value = Buffer.alloc(MiB, 7);
  for (const key of big) await redis.set(key, value);
  await redis.set('pace:huge', Buffer.alloc(8 * MiB, 1));
  const pipeline = redis.pipeline();
  for (const key of small) pipeline.set(key, 'x');
  await pipeline.exec();
  const sizes = new Map<string, number>([...big.map((k): [string, number] => [k, MiB]), ...small.map((k): [string, number] => [k, 1]), ['pace:huge', 8 * MiB]]);
  const keys = [...big.slice(0, 20), 'pace:huge', 'pace:missing', ...small, ...big.slice(20)];
  let removed = 0;
  const unlinks = await unlinksDuring(async () => (removed = await unlinkKeys(redis, keys, 4 * MiB)));
  t.equal(removed, keys.length - 1, 'every key that existed counted');
  t.equal(await redis.exists(...keys), 0, 'nothing left');
  t.same(unlinks.flat().sort(), [...keys].sort(), 'each key unlinked once');
  for (const batch of unlinks) {
    const bytes = batch.reduce((n, k) => n + (sizes.get(k) ?? 0), 0);
    t.ok(bytes <= 4 * MiB || batch.length === 1, `an UNLINK of ${batch.length} keys frees ${bytes} bytes`);
    t.ok(batch.length <= 500);
  }
  t.ok(unlinks.some((b) => b.length === 4 && b.every((k) => sizes.get(k) === MiB)), 'full batches of 1-MiB values: 4 to a 4-MiB budget');
  t.ok(unlinks.some((b) => b.length > 100), 'small values go many to an UNLINK');
});

t.test('an overwrite save drops the replaced save in UNLINKs within the default budget', async (t) => {
  const id = 'pace/overwrite';
  const tensor = (v: number) => new Tensor('uint8', [40 * MiB], new Uint8Array(40 * MiB).fill(v));
  await save({ w: tensor(1) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
  const space = new KeySpace('dcp');
  const [firstSave] = await redis.smembers(space.checkpoint(id).saves);
  const oldKeys = await redis.smembers(space.checkpoint(id).dataIndex(firstSave!));
  t.ok(oldKeys.length >= 40, `the first save wrote ${oldKeys.length} segments`);
  const unlinks = await unlinksDuring(() => save({ w: tensor(2) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, overwrite: true }) }));
  const dropped = unlinks.filter((b) => b.some((k) => oldKeys.includes(k)));
  t.same(dropped.flat().sort(), [...oldKeys].sort(), 'the replaced save\'s segments, each once');
  t.ok(dropped.length >= Math.ceil((40 * MiB) / UNLINK_BUDGET_BYTES), `${dropped.length} UNLINKs`);
  for (const batch of dropped) t.ok(batch.length * (MiB - 64) <= UNLINK_BUDGET_BYTES, `${batch.length} segments in one UNLINK`);
  t.equal(await redis.exists(...oldKeys), 0);
  await assertStoreAgrees(t, { redis, expect: { [id]: committed({ w: tensor(2) }) }, exhaustive: false });
});
