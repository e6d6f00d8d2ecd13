/**
 * A load's pin holds back the garbage of an overwrite save (docs/format.md, "Load pins"):
 * a load that read the replaced metadata finishes with the old bytes, and the replaced save
 * goes once no pin is left (gc, or the next commit). An expired pin holds nothing.
 */
import t, { type Test } from 'tap';
import type { Cluster, Redis } from 'ioredis';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { RedisClusterFixture, RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

const space = new KeySpace();
const N = 64 * 1024; // 256 KiB of float32: four 64 KiB segments
const SEGMENT = 64 * 1024;
const POOL_TTL = 60_000;

function stateDict(seed: number): { w: Tensor; v: Tensor } {
  const w = new Float32Array(N);
  for (let i = 0; i < N; i++) w[i] = seed * 1000 + i;
  return { w: new Tensor('float32', [N], w), v: new Tensor('float32', [16], new Float32Array(16).fill(seed)) };
}
const blank = () => ({ w: new Tensor('float32', [N]), v: new Tensor('float32', [16]) });
const sameBytes = (a: Tensor, b: Tensor) => Buffer.compare(Buffer.from(a.bytes), Buffer.from(b.bytes)) === 0;

type WriterExtra = Partial<NonNullable<ConstructorParameters<typeof RedisStorageWriter>[0]>>;
const saveAs = (id: string, seed: number, extra: WriterExtra, client: Redis | Cluster = redis) =>
  save(stateDict(seed), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis: client, segmentBytes: SEGMENT, overwrite: true, ...extra }) });

/** A reader that waits before reading data: a load pinned, with the metadata read, mid-way. */
class GatedReader extends RedisStorageReader {
  readonly metadataRead: Promise<void>;
  private onMetadata!: () => void;
  private open!: () => void;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  constructor(client: Redis | Cluster) {
    super({ redis: client });
    this.metadataRead = new Promise((resolve) => (this.onMetadata = resolve));
  }
  override async readMetadata(): ReturnType<RedisStorageReader['readMetadata']> {
    const metadata = await super.readMetadata();
    this.onMetadata();
    return metadata;
  }
  override async readData(...args: Parameters<RedisStorageReader['readData']>): Promise<void> {
    await this.gate;
    return super.readData(...args);
  }
  release(): void {
    this.open();
  }
}

/** How many of `keys` exist (one EXISTS each: data keys spread over a Cluster's slots). */
async function existing(keys: readonly string[], client: Redis | Cluster = redis): Promise<number> {
  return (await Promise.all(keys.map((k) => client.exists(k)))).reduce((a, b) => a + b, 0);
}

/**
 * Saves seed 1, starts a load, overwrites with seed 2 while the load is pinned mid-way, then
 * lets the load finish: it must get seed 1 bit for bit. Returns the replaced save's id and data keys.
 */
async function overwriteUnderLoad(t: Test, id: string, extra: WriterExtra, catalog: CheckpointCatalog, client: Redis | Cluster = redis): Promise<{ old: string; oldKeys: string[] }> {
  await saveAs(id, 1, extra, client);
  const store = new CheckpointStore(client, space, id);
  const old = (await store.state())!.committedSaveId!;
  const oldKeys = await client.smembers(store.keys.dataIndex(old));
  const reader = new GatedReader(client);
  const destination = blank();
  const loading = load(destination, { checkpointId: id, storageReader: reader });
  await reader.metadataRead;

  await saveAs(id, 2, extra, client);
  const state = (await store.state())!;
  t.not(state.committedSaveId, old, 'the overwrite committed');
  t.same((await client.smembers(store.keys.saves)).sort(), [old, state.committedSaveId].sort(), 'the replaced save stays indexed while the load pins it');
  t.equal(await existing(oldKeys, client), oldKeys.length, 'its data keys stay');
  t.equal(state.heldBytes + state.heldPieceBytes > 0, true, 'the state hash counts the held bytes');
  const usage = await catalog.usage({ prefix: id });
  t.equal(usage.committed.bytes, (extra.incremental ? state.storedBytes : state.totalBytes) + state.heldBytes + state.heldPieceBytes, 'usage counts the held save');

  const pinnedGc = await catalog.gc({ prefix: id });
  t.ok(pinnedGc.kept.includes(id) && pinnedGc.released === undefined, 'gc keeps a pinned checkpoint’s replaced save');
  t.equal((await client.smembers(store.keys.saves)).length, 2);

  reader.release();
  await loading;
  await reader.close();
  const expected = stateDict(1);
  t.ok(sameBytes(destination.w, expected.w) && sameBytes(destination.v, expected.v), 'the pinned load got the replaced bytes, bit for bit');
  const fresh = blank();
  const freshReader = new RedisStorageReader({ redis: client });
  await load(fresh, { checkpointId: id, storageReader: freshReader });
  await freshReader.close();
  t.ok(sameBytes(fresh.w, stateDict(2).w), 'a new load gets the new bytes');
  return { old, oldKeys };
}

const modes: ReadonlyArray<readonly [string, WriterExtra]> = [
  ['full saves', {}],
  ['segment recycling', { recycleTtlMs: POOL_TTL }],
  ['incremental saves', { incremental: true }],
];

for (const [mode, extra] of modes) {
  t.test(`${mode}: a pinned load outlives an overwrite; gc removes the held save once unpinned`, async (t) => {
    const catalog = new CheckpointCatalog({ redis, ...(extra.recycleTtlMs ? { recycleTtlMs: extra.recycleTtlMs } : {}) });
    t.teardown(() => catalog.close());
    const id = `held/gc-${mode.replace(/ /g, '-')}`;
    const { old, oldKeys } = await overwriteUnderLoad(t, id, extra, catalog);
    const store = new CheckpointStore(redis, space, id);

    const dry = await catalog.gc({ prefix: id, dryRun: true });
    t.same(dry.released, [id], 'dryRun: would release');
    t.equal((await redis.smembers(store.keys.saves)).length, 2, 'dryRun released nothing');
    const result = await catalog.gc({ prefix: id });
    t.same(result.released, [id], 'gc released the replaced save');
    t.same(await redis.smembers(store.keys.saves), [(await store.state())!.committedSaveId], 'only the committed save is indexed');
    t.equal(await redis.exists(store.keys.dataIndex(old)), 0, 'the replaced save’s index is gone');
    t.equal(await existing(oldKeys), 0, 'and its data keys');
    if (extra.recycleTtlMs) t.ok((await redis.scard(space.segmentPool())) > 0, 'its segments went into the pool');
    t.equal((await store.state())!.heldBytes + (await store.state())!.heldPieceBytes, 0, 'no held bytes left');
    t.same((await catalog.gc({ prefix: id })).released, undefined, 'a second gc finds nothing');
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(stateDict(2)) }, exhaustive: false });
  });

  t.test(`${mode}: the next unpinned overwrite commit drops the held save`, async (t) => {
    const catalog = new CheckpointCatalog({ redis });
    t.teardown(() => catalog.close());
    const id = `held/next-${mode.replace(/ /g, '-')}`;
    const { old, oldKeys } = await overwriteUnderLoad(t, id, extra, catalog);
    const store = new CheckpointStore(redis, space, id);
    const second = (await store.state())!.committedSaveId!;
    await saveAs(id, 3, extra);
    const state = (await store.state())!;
    t.same(await redis.smembers(store.keys.saves), [state.committedSaveId], 'the commit dropped both replaced saves');
    t.not(state.committedSaveId, second);
    t.equal(await redis.exists(store.keys.dataIndex(old), store.keys.dataIndex(second)), 0);
    t.equal(await existing(oldKeys), 0, 'the held save’s data keys are gone');
    t.equal(state.heldBytes + state.heldPieceBytes, 0);
    await assertStoreAgrees(t, { redis, expect: { [id]: committed(stateDict(3)) }, exhaustive: false });
  });
}

t.test('an expired pin (a stalled loader that never extended it) holds nothing back', async (t) => {
  const id = 'held/expired';
  await saveAs(id, 1, {});
  const store = new CheckpointStore(redis, space, id);
  const old = (await store.state())!.committedSaveId!;
  const oldKeys = await redis.smembers(store.keys.dataIndex(old));
  await store.pin('stalled-loader', 100);
  await new Promise((r) => setTimeout(r, 250));
  await saveAs(id, 2, {});
  const state = (await store.state())!;
  t.same(await redis.smembers(store.keys.saves), [state.committedSaveId], 'the commit dropped the replaced save at once');
  t.equal(await existing(oldKeys), 0);
  t.equal(state.heldBytes, 0);
  t.equal(await redis.zcard(store.keys.pins), 0, 'the commit dropped the expired pin');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(stateDict(2)) }, exhaustive: false });
});

t.test('a live pin taken directly holds the replaced save (assertStoreAgrees accepts it while the pin lives); gc drops it after the unpin', async (t) => {
  const id = 'held/direct';
  await saveAs(id, 1, {});
  const store = new CheckpointStore(redis, space, id);
  await store.pin('eval-job', 30_000);
  await saveAs(id, 2, {});
  t.equal((await redis.smembers(store.keys.saves)).length, 2, 'held');
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(stateDict(2)) }, exhaustive: false, pinned: [id] });
  await store.unpin('eval-job');
  const catalog = new CheckpointCatalog({ redis });
  t.teardown(() => catalog.close());
  t.same((await catalog.gc({ prefix: id })).released, [id]);
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(stateDict(2)) }, exhaustive: false });
});

t.test('Redis Cluster: the commit and gc see the pin in the checkpoint’s slot', async (t) => {
  const cluster = await RedisClusterFixture.start(3);
  t.teardown(() => cluster.stop());
  const client = cluster.client();
  const catalog = new CheckpointCatalog({ redis: client });
  t.teardown(() => catalog.close());
  const id = 'held/cluster';
  const { old, oldKeys } = await overwriteUnderLoad(t, id, {}, catalog, client);
  t.same((await catalog.gc({ prefix: id })).released, [id], 'gc released the replaced save');
  t.equal(await client.exists(space.checkpoint(id).dataIndex(old)), 0);
  t.equal(await existing(oldKeys, client), 0, 'its data keys are gone');
  await assertStoreAgrees(t, { redis: client, expect: { [id]: committed(stateDict(2)) }, exhaustive: false });
});
