/**
 * Incremental saves on a 3-master Redis Cluster (pieces tagged per hash prefix, counts and
 * piece indexes per tag; docs/format.md, "Redis Cluster"): the standalone scenarios again.
 * A then B with one tensor changed (used_memory summed over the masters grows by about the
 * changed bytes), deletes of A then B leave no key; a delete of A racing B's save in both
 * orders; B's save SIGKILLed during its claims; a late claim of a dead save swept by gc.
 * Each ends with assertStoreAgrees (per-tag counts, holders and tag sets included).
 */
import t, { type Test } from 'tap';
import type { Redis } from 'ioredis';
import { save } from '../../src/core/save.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { runScript } from '../../src/redis/scripts.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { RedisClusterFixture } from '../helpers/redis-server.js';
import { startFixture } from '../helpers/child.js';
import { incrementalStateDict } from '../fixtures/incremental-data.js';

// The last test's cluster with a replica per master starts now, beside this one (most of its start
// is waiting for the cluster and the replicas to come up); that test awaits it, and reports its failure.
const replicatedStart = RedisClusterFixture.start(3, { replicas: 1 });
replicatedStart.catch(() => {}); // not unhandled while the other tests run
const cluster = await RedisClusterFixture.start(3);
const client = cluster.client();
const masters = () => client.nodes('master') as Redis[];
const catalog = new CheckpointCatalog({ redis: client, lockTtlMs: 1500 });
t.teardown(async () => {
  await catalog.close();
  await cluster.stop();
  await replicatedStart.then((replicated) => replicated.stop(), () => {});
});

const keysOnMasters = async (pattern: string) => (await Promise.all(masters().map((n) => n.keys(pattern)))).flat().sort();
const usedNow = async () => (await Promise.all(masters().map(async (n) => Number(/used_memory:(\d+)/.exec(await n.info('memory'))![1])))).reduce((a, b) => a + b, 0);
/** used_memory summed over the masters, once client query buffers of the last writes were trimmed (Redis' clientsCron): the least of a few samples. */
async function usedMemory(): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < 8; i++) {
    least = Math.min(least, await usedNow());
    await new Promise((r) => setTimeout(r, 250));
  }
  return least;
}
const writer = (segmentBytes?: number) => new RedisStorageWriter({ redis: client, incremental: true, ...(segmentBytes ? { segmentBytes } : {}) });

async function nothingLeft(t: Test): Promise<void> {
  t.same((await keysOnMasters('dcp:*')).filter((k) => k !== 'dcp:catalog' && k !== 'dcp:fence'), [], 'no key of the prefix left on any master (pieces, counts, holders, indexes)');
}

t.test('save A (64 MiB, 12 tensors), change one tensor, save B: used_memory over the masters grows by about the changed bytes; delete A, B loads; delete B, nothing left', async (t) => {
  const [rows, cols] = [1366, 1024];
  const seeds = Array.from({ length: 12 }, (_, i) => i + 1);
  const a = incrementalStateDict(seeds, rows, cols, 1);
  await save(a, { checkpointId: 'ci/a', storageWriter: writer() });
  const pieces = await keysOnMasters('dcp:blob:*');
  const perMaster = await Promise.all(masters().map(async (n) => (await n.keys('dcp:blob:*')).length));
  t.ok(perMaster.every((n) => n > 0), `pieces on every master: ${perMaster.join(', ')}`);
  t.ok(pieces.every((k) => /^dcp:blob:\{([0-9a-f]{2})\}:\1[0-9a-f]{30}-\d+$/.test(k)), 'pieces are tagged by the first two hex digits of their hash');
  const before = await usedMemory();
  const b = incrementalStateDict(seeds.map((s, i) => (i === 5 ? 100 : s)), rows, cols, 2);
  await save(b, { checkpointId: 'ci/b', storageWriter: writer() });
  const grown = (await usedMemory()) - before;
  const changed = rows * cols * 4;
  const metadata = (await client.strlen('dcp:ckpt:{ci/b}:meta')) + 64 * 1024;
  t.ok(grown <= 1.1 * changed + metadata, `used_memory (3 masters) grew by ${grown} bytes for ${changed} changed (limit ${Math.round(1.1 * changed + metadata)})`);
  const [sa, sb] = [await catalog.get('ci/a'), await catalog.get('ci/b')];
  t.equal(sa.storedBytes, sa.totalBytes, 'A stored everything');
  t.ok(sb.storedBytes >= changed && sb.storedBytes <= changed + 64, `B stored only the changed tensor (+ the step): ${sb.storedBytes}`);
  let pieceBytes = 0;
  for (const key of await keysOnMasters('dcp:blob:*')) pieceBytes += await client.strlen(key);
  t.equal((await catalog.usage()).committed.bytes, pieceBytes, 'usage counts shared pieces once (the 256 tag counters)');
  await assertStoreAgrees(t, { redis: client, expect: { 'ci/a': committed(a), 'ci/b': committed(b) } });
  t.equal(await catalog.delete('ci/a'), true);
  await assertStoreAgrees(t, { redis: client, expect: { 'ci/a': absent, 'ci/b': committed(b) } });
  t.equal(await catalog.delete('ci/b'), true);
  await assertStoreAgrees(t, { redis: client, expect: { 'ci/a': absent, 'ci/b': absent } });
  await nothingLeft(t);
});

const SEEDS_A = [1, 2, 3, 4, 5, 6];
const SEEDS_B = [1, 2, 9, 4, 5, 6];
const [ROWS, COLS] = [64, 1024];
const SEGMENT = 64 * 1024 - 64;
const refA = incrementalStateDict(SEEDS_A, ROWS, COLS, 1);
const refB = incrementalStateDict(SEEDS_B, ROWS, COLS, 2);
const saveA = (id: string) => save(incrementalStateDict(SEEDS_A, ROWS, COLS, 1), { checkpointId: id, storageWriter: writer(SEGMENT) });
const saveB = (id: string) => save(incrementalStateDict(SEEDS_B, ROWS, COLS, 2), { checkpointId: id, storageWriter: writer(SEGMENT) });
const url = `redis://127.0.0.1:${cluster.nodes[0]!.port}`;
const saveProcess = (id: string, env: NodeJS.ProcessEnv) =>
  startFixture('test/fixtures/incremental-save.ts', [url, id], { CLUSTER: '1', SEEDS: SEEDS_B.join(','), ROWS: String(ROWS), COLS: String(COLS), LOCK_TTL_MS: '1500', ...env });

async function lockLapsed(id: string): Promise<void> {
  while ((await client.exists(`dcp:ckpt:{${id}}:lock`)) === 1) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1600)); // and the crashed save's lease
}

t.test('delete of A while the save of B (another process) is paused after its first claim: B commits whole, A goes', async (t) => {
  const [a, b] = ['cr1/a', 'cr1/b'];
  await saveA(a);
  const child = saveProcess(b, { PAUSE: 'after-claim', RESUME_KEY: 'cr1:resume' });
  await child.waitFor('paused-after-claim');
  t.equal(await catalog.delete(a), true, 'A deleted while B is part-way through its claims');
  await client.set('cr1:resume', '1');
  const result = await child.done;
  t.same(result.json, { ok: true }, `B committed (${result.stderr.slice(0, 300)})`);
  await client.del('cr1:resume');
  await assertStoreAgrees(t, { redis: client, expect: { [a]: absent, [b]: committed(refB) } });
  await catalog.delete(b);
  await nothingLeft(t);
});

t.test('save of B while the delete of A is paused after begin-delete: B claims the pieces A still holds; they survive the delete', async (t) => {
  const [a, b] = ['cr2/a', 'cr2/b'];
  await saveA(a);
  const { beginDelete } = CheckpointStore.prototype;
  let resume!: () => void;
  const paused = new Promise<void>((r) => (resume = r));
  let reached!: () => void;
  const atBegin = new Promise<void>((r) => (reached = r));
  CheckpointStore.prototype.beginDelete = async function (this: CheckpointStore, token: string) {
    const ids = await beginDelete.call(this, token);
    reached();
    await paused;
    return ids;
  };
  const deleting = catalog.delete(a);
  await atBegin;
  CheckpointStore.prototype.beginDelete = beginDelete;
  await saveB(b);
  t.ok((await catalog.get(b)).storedBytes <= ROWS * COLS * 4 + 64, "B found A's pieces stored and claimed them");
  resume();
  t.equal(await deleting, true, 'the delete of A finished');
  await assertStoreAgrees(t, { redis: client, expect: { [a]: absent, [b]: committed(refB) } });
  await catalog.delete(b);
  await nothingLeft(t);
});

for (const stop of ['before-claim', 'after-claim', 'before-commit'] as const) {
  t.test(`incremental save of B SIGKILLed ${stop} (during reference recording for after-claim); A shares all but one tensor`, async (t) => {
    const [a, b] = [`ck/${stop}/a`, `ck/${stop}/b`];
    await saveA(a);
    const result = await saveProcess(b, { STOP: stop }).done;
    t.equal(result.signal, 'SIGKILL', `the save process died ${stop}`);
    await assertStoreAgrees(t, { redis: client, expect: { [a]: committed(refA), [b]: incomplete } });
    t.equal(await catalog.delete(a), true, 'A deleted while the dead save of B holds claims');
    await assertStoreAgrees(t, { redis: client, expect: { [a]: absent, [b]: incomplete } });
    await lockLapsed(b);
    await saveB(b);
    await assertStoreAgrees(t, { redis: client, expect: { [a]: absent, [b]: committed(refB) } });
    await catalog.delete(b);
    await nothingLeft(t);
  });
}

t.test('a claim of a dead save that lands after its release (no pending check in the tag slot) is released by gc', async (t) => {
  await saveA('late/a');
  const keySpace = new KeySpace('dcp');
  const id = 'late/a';
  const saveId = (await client.hget(`dcp:ckpt:{${id}}:state`, 'committedSaveId'))!;
  const piece = (await keysOnMasters('dcp:blob:*'))[0]!.replace(/^dcp:blob:\{..\}:/, '');
  t.equal(await catalog.delete(id), true);
  // A straggler rank's claim of the deleted save, sent before the delete and arriving after it, and its SET.
  const tag = keySpace.pieceTag(piece);
  const hold = keySpace.tagHold(tag, id, saveId);
  await runScript(client, 'claim-tagged-pieces', [keySpace.tagCounts(tag), keySpace.tagBytes(tag), keySpace.tagHolders(tag), hold, keySpace.taggedPiece(piece)], [`${id}/${saveId}`, piece]);
  await client.set(keySpace.taggedPiece(piece), Buffer.alloc(Number(piece.split('-')[1])));
  t.equal(await client.hget(keySpace.tagCounts(tag), piece), '1', 'the late claim counted the piece');
  await catalog.gc();
  await nothingLeft(t);
});

t.test('with a replica per master: an incremental save waits until the replicas hold its pieces and claims', async (t) => {
  const replicated = await replicatedStart; // stopped by the file's teardown
  const c = replicated.client();
  const sd = incrementalStateDict(SEEDS_A, ROWS, COLS, 1);
  await save(sd, { checkpointId: 'rep/a', storageWriter: new RedisStorageWriter({ redis: c, incremental: true, segmentBytes: SEGMENT }) });
  // Right after the save returned, with no wait of our own: every replica has what its master has.
  const roles = await Promise.all(replicated.nodes.map(async (n) => ({ client: n.client(), replica: /role:slave/.test(await n.client().info('replication')) })));
  const perNode = async (replica: boolean) => (await Promise.all(roles.filter((r) => r.replica === replica).map((r) => r.client.keys('dcp:blob*')))).flat().sort();
  const [masterKeys, replicaKeys] = [await perNode(false), await perNode(true)];
  t.ok(masterKeys.length > 0, `${masterKeys.length} piece and count keys on the masters`);
  t.same(replicaKeys, masterKeys, 'the replicas hold every piece, count hash, holders set and piece index');
  await assertStoreAgrees(t, { redis: c, expect: { 'rep/a': committed(sd) } });
});
