/**
 * Segment bytes on Redis Cluster through per-master bulk connections (src/redis/cluster-bulk.ts):
 * bit for bit, a resharding during a save (slots MIGRATING/IMPORTING, keys MIGRATEd, slots
 * reassigned: ASK and MOVED replies) and a master killed with its replica promoted during a
 * load and during a save. One cluster of 3 masters + 3 replicas for every case.
 */
import t from 'tap';
import { Cluster, Redis } from 'ioredis';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import type { SavePlan } from '../../src/core/planner.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { Tensor } from '../../src/core/tensor.js';
import { BulkSocket } from '../../src/redis/bulk-socket.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { keySlot, openBulk } from '../../src/redis/cluster-bulk.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter, segmentSizes } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { RedisClusterFixture, type RedisServer } from '../helpers/redis-server.js';

const fixture = await RedisClusterFixture.start(3, { replicas: 1, nodeTimeoutMs: 2000 });
const cluster = fixture.client();
t.teardown(() => fixture.stop());
const admin = new Map<number, Redis>();
t.teardown(() => admin.forEach((c) => c.disconnect()));
/** A plain connection to one node (CLUSTER commands go to that node, not through the Cluster client). */
const node = (port: number): Redis => {
  if (!admin.has(port)) admin.set(port, Object.assign(new Redis({ port, host: '127.0.0.1', disableClientInfo: true, maxRetriesPerRequest: 0 }), {}).on('error', () => {}));
  return admin.get(port)!;
};

const SEGMENT = 256 * 1024 - 64;
const space = new KeySpace();

function stateDict(seed: number, mib: number): StateDict {
  const n = (mib * 2 ** 20) / 4;
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = ((i * 2654435761 + seed) % 1_000_003) / 7;
  return { w: new Tensor('float32', [n], w), step: seed };
}

/** Counts (and can hold back) the bulk connections' requests. */
const calls = { set: 0, getRange: 0, wait: 0 };
let beforeSet: ((n: number) => Promise<void>) | undefined;
const origSet = BulkSocket.prototype.set;
const origGet = BulkSocket.prototype.getRangeInto;
BulkSocket.prototype.set = async function (this: BulkSocket, ...args: Parameters<typeof origSet>) {
  const n = ++calls.set;
  if (beforeSet) await beforeSet(n);
  return origSet.apply(this, args);
};
const origWait = BulkSocket.prototype.waitForReplicas;
BulkSocket.prototype.waitForReplicas = function (this: BulkSocket, ...args: Parameters<typeof origWait>) {
  calls.wait++;
  return origWait.apply(this, args);
};
BulkSocket.prototype.getRangeInto = function (this: BulkSocket, ...args: Parameters<typeof origGet>) {
  calls.getRange++;
  return origGet.apply(this, args);
};

interface NodeInfo {
  readonly id: string;
  readonly port: number;
  readonly master: boolean;
  /** The master's id, for a replica. */
  readonly replicaOf: string | undefined;
  readonly alive: boolean;
  readonly slots: Array<[number, number]>;
}

async function topology(): Promise<NodeInfo[]> {
  for (const server of fixture.nodes) {
    const text = (await node(server.port).cluster('NODES').catch(() => undefined)) as string | undefined;
    if (!text) continue;
    return text
      .trim()
      .split('\n')
      .map((line) => {
        const f = line.split(' ');
        const slots = f.slice(8).filter((s) => /^\d+(-\d+)?$/.test(s)).map((s) => s.split('-').map(Number)).map(([a, b]) => [a!, b ?? a!] as [number, number]);
        return { id: f[0]!, port: Number(f[1]!.split(':')[1]!.split('@')[0]), master: f[2]!.includes('master') && !f[2]!.includes('fail'), replicaOf: f[3] === '-' ? undefined : f[3], alive: !f[2]!.includes('fail'), slots };
      });
  }
  throw new Error('no node answers');
}

const ownerOf = (nodes: NodeInfo[], slot: number) => nodes.find((n) => n.master && n.slots.some(([a, b]) => slot >= a && slot <= b))!;

async function errorstat(port: number, kind: string): Promise<number> {
  const info = await node(port).info('errorstats').catch(() => '');
  return Number(new RegExp(`errorstat_${kind}:count=(\\d+)`).exec(info)?.[1] ?? 0);
}

/** Moves `slot` to the next master (by port): 'begin' marks it IMPORTING/MIGRATING, 'finish' MIGRATEs its keys and reassigns it everywhere, 'whole' does both. */
async function migrate(slot: number, stage: 'begin' | 'finish' | 'whole'): Promise<void> {
  const nodes = await topology();
  const masters = nodes.filter((n) => n.master).sort((a, b) => a.port - b.port);
  const from = ownerOf(nodes, slot);
  const to = masters[(masters.indexOf(from) + 1) % masters.length]!;
  if (stage !== 'finish') {
    await node(to.port).cluster('SETSLOT', slot, 'IMPORTING', from.id);
    await node(from.port).cluster('SETSLOT', slot, 'MIGRATING', to.id);
  }
  if (stage === 'begin') return;
  const target = to;
  for (;;) {
    const keys = (await node(from.port).cluster('GETKEYSINSLOT', slot, 100)) as string[];
    if (keys.length === 0) break;
    await node(from.port).migrate('127.0.0.1', target.port, '', 0, 10_000, 'KEYS', ...keys);
  }
  // Target first (it ends importing and claims the slot), then the source, then the others, as redis-cli does.
  for (const m of [target, from, ...masters.filter((m) => m !== target && m !== from)]) await node(m.port).cluster('SETSLOT', slot, 'NODE', target.id);
  // Every node (replicas too) agrees on the new owner before the test goes on: no MOVED ping-pong while gossip spreads it.
  const deadline = Date.now() + 10_000;
  for (const server of fixture.nodes.filter((n) => nodes.some((i) => i.port === n.port && i.alive))) {
    for (;;) {
      const ranges = await node(server.port).cluster('SLOTS');
      if (ranges.some(([a, b, owner]) => a <= slot && slot <= b && owner?.[1] === target.port)) break;
      if (Date.now() > deadline) throw new Error(`node ${server.port} does not see slot ${slot} on ${target.port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

t.test('keySlot agrees with CLUSTER KEYSLOT', async (t) => {
  const keys = ['a', 'dcp:data:run/x:abc:0:17', 'dcp:ckpt:{run/x}:state', '{}x', 'x{}y', '{a}{b}', 'ü{ñ}', 'foo{bar'];
  for (const key of keys) t.equal(keySlot(key), Number(await node(fixture.nodes[0]!.port).cluster('KEYSLOT', key)), key);
});

t.test('bulk connections of a lazily connecting Cluster client: opened once it is ready', async (t) => {
  const lazy = new Cluster(fixture.nodes.slice(0, 1).map((n) => ({ host: '127.0.0.1', port: n.port })), { lazyConnect: true, redisOptions: { disableClientInfo: true } });
  lazy.on('error', () => {});
  t.teardown(() => lazy.disconnect());
  const bulk = (await openBulk(lazy, 1))!;
  const dest = Buffer.alloc(5);
  await bulk.set('cb:lazy', [Buffer.from('he'), Buffer.from('llo')]);
  t.equal(await bulk.getRangeInto('cb:lazy', 0, 4, dest), 5);
  t.equal(dest.toString(), 'hello');
  bulk.close();
  await cluster.del('cb:lazy');
});

t.test('save and load move every segment through the masters\' bulk connections, bit for bit', async (t) => {
  const sd = stateDict(1, 8);
  calls.set = 0;
  calls.getRange = 0;
  calls.wait = 0;
  await save(sd, { checkpointId: 'cb/plain', storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes: SEGMENT }) });
  const segments = segmentSizes(8 * 2 ** 20 + 0, SEGMENT).length;
  t.ok(calls.set >= segments, `${calls.set} SETs on bulk connections for ${segments}+ segments`);
  t.equal(calls.wait, 3, 'before the commit, each master waited for its replica (WAIT on the connection that wrote)');
  const perMaster = await Promise.all(cluster.nodes('master').map(async (m) => (await m.keys('dcp:data:cb/plain:*')).length));
  t.ok(perMaster.length === 3 && perMaster.every((n) => n > 0), `segments on every master: ${perMaster.join(', ')}`);
  await assertStoreAgrees(t, { redis: cluster, expect: { 'cb/plain': committed(sd) } });
  t.ok(calls.getRange >= segments, `${calls.getRange} GETRANGEs on bulk connections`);
});

class HookedWriter extends RedisStorageWriter {
  begunSaveId: string | undefined;
  constructor(
    private readonly onBegun: (saveId: string) => Promise<void>,
    options: ConstructorParameters<typeof RedisStorageWriter>[0],
  ) {
    super(options);
  }
  override async prepareGlobalPlan(plans: SavePlan[]): Promise<SavePlan[]> {
    const out = await super.prepareGlobalPlan(plans);
    this.begunSaveId = (out[0]!.storageData as { saveId: string }).saveId;
    await this.onBegun(this.begunSaveId);
    return out;
  }
}

t.test('a resharding during a save: slots migrating (ASK) and reassigned (MOVED); the save completes and loads bit for bit', async (t) => {
  const id = 'cb/resharded';
  const sd = stateDict(2, 16);
  const n = segmentSizes(16 * 2 ** 20, SEGMENT).length; // the float tensor; `step` goes into the metadata
  const controlSlot = keySlot(space.checkpoint(id).state);
  const keyOf = (saveId: string, seq: number) => space.checkpoint(id).dataKey(saveId, 0, seq);
  const slotsOf = (saveId: string, from: number, to: number) => [...new Set(Array.from({ length: to - from }, (_, i) => keySlot(keyOf(saveId, from + i))))].filter((s) => s !== controlSlot);
  let groups: { early: number[]; asked: number[]; late: number[] } | undefined;
  const before = { ask: 0, moved: 0 };
  for (const s of fixture.nodes) {
    before.ask += await errorstat(s.port, 'ASK');
    before.moved += await errorstat(s.port, 'MOVED');
  }
  const writer = new HookedWriter(async (saveId) => {
    // Keys 0..n/4 get written first and are then moved whole; keys n/4..n/2 land in slots already migrating (ASK).
    const early = slotsOf(saveId, 0, Math.floor(n / 4));
    const asked = slotsOf(saveId, Math.floor(n / 4), Math.floor(n / 2)).filter((s) => !early.includes(s));
    const late = slotsOf(saveId, Math.floor((3 * n) / 4), n).filter((s) => !early.includes(s) && !asked.includes(s));
    groups = { early, asked, late };
    for (const slot of asked) await migrate(slot, 'begin');
  }, { redis: cluster, segmentBytes: SEGMENT, maxInFlight: 2 });
  // Halfway through the writes, the writes wait while: the early slots move whole (their keys
  // MIGRATEd), the asked slots are finished, the late slots start migrating (left so until the end).
  beforeSet = async (count) => {
    if (count !== Math.floor(n / 2) || !groups) return;
    for (const slot of groups.early) await migrate(slot, 'whole');
    for (const slot of groups.asked) await migrate(slot, 'finish');
    for (const slot of groups.late) await migrate(slot, 'begin');
  };
  calls.set = 0;
  try {
    await save(sd, { checkpointId: id, storageWriter: writer });
  } finally {
    beforeSet = undefined;
  }
  // A load while the late slots still migrate: their keys sit on the importing nodes (ASK on every read).
  const dest = { w: new Tensor('float32', [(16 * 2 ** 20) / 4]), step: 0 };
  await load(dest, { checkpointId: id, storageReader: new RedisStorageReader({ redis: cluster }) });
  t.equal(Buffer.compare(Buffer.from(dest.w.bytes), Buffer.from((sd.w as Tensor).bytes)), 0, 'loads bit for bit while slots migrate');
  for (const slot of groups!.late) await migrate(slot, 'finish');
  const after = { ask: 0, moved: 0 };
  for (const s of fixture.nodes) {
    after.ask += await errorstat(s.port, 'ASK');
    after.moved += await errorstat(s.port, 'MOVED');
  }
  t.ok(groups!.early.length > 0 && groups!.asked.length > 0 && groups!.late.length > 0, `slots moved: ${groups!.early.length} whole, ${groups!.asked.length} + ${groups!.late.length} while written`);
  t.ok(after.ask > before.ask, `ASK replies followed (${after.ask - before.ask})`);
  t.ok(after.moved > before.moved, `MOVED replies followed (${after.moved - before.moved})`);
  await assertStoreAgrees(t, { redis: cluster, expect: { 'cb/plain': committed(stateDict(1, 8)), [id]: committed(sd) } });
});

t.test('segment recycling per master: a deleted checkpoint pools its segments in place on each master, the next save DELs them right before its SETs on the same master, loads bit for bit', async (t) => {
  const TTL = 60_000;
  const catalog = new CheckpointCatalog({ redis: cluster, recycleTtlMs: TTL });
  t.teardown(() => catalog.close());
  const writer = (recycleTtlMs: number) => new RedisStorageWriter({ redis: cluster, segmentBytes: SEGMENT, recycleTtlMs });
  const keysOn = async (id: string) => Promise.all(cluster.nodes('master').map((m) => m.keys(`dcp:data:${id}:*`)));
  await save(stateDict(6, 8), { checkpointId: 'cr/a', storageWriter: writer(TTL) });

  const aOn = await keysOn('cr/a');
  const aKeys = aOn.flat();
  t.equal(await catalog.delete('cr/a'), true);
  const pools = await Promise.all(cluster.nodes('master').map((m) => m.keys('dcp:pool:{*}')));
  t.ok(pools.every((p) => p.length === 1), `one pool set per master: ${pools.flat().join(', ')}`);
  const members = (await Promise.all(pools.flat().map((p) => cluster.smembers(p)))).flat();
  t.same([...members].sort(), [...aKeys].sort(), 'every segment of the deleted checkpoint is pooled, in place');
  const ttls = await Promise.all(members.map((k) => cluster.pttl(k)));
  t.ok(ttls.every((ms) => ms > 0 && ms <= TTL), 'pooled segments expire');
  t.equal((await catalog.usage()).pooled.segments, aKeys.length, 'usage counts every master\'s pool');

  const sd = stateDict(7, 8);
  await save(sd, { checkpointId: 'cr/b', storageWriter: writer(TTL) });
  // Each master's full-size segments of the new save took that master's pooled segments, as many as it had.
  const bOn = await keysOn('cr/b');
  const fullOn = await Promise.all(bOn.map(async (keys) => (await Promise.all(keys.map((k) => cluster.strlen(k)))).filter((n) => n === SEGMENT).length));
  const expectLeft = aOn.reduce((sum, keys, m) => sum + Math.max(0, keys.length - fullOn[m]!), 0);
  const left = (await Promise.all(pools.flat().map((p) => cluster.smembers(p)))).flat();
  t.equal(left.length, expectLeft, `pooled segments taken on their own masters (${aKeys.length - left.length} taken, ${left.length} stay pooled)`);
  t.equal((await Promise.all(aKeys.map((k) => cluster.exists(k)))).reduce((a, b) => a + b, 0), left.length, 'taken segments are gone');
  const bTtls = await Promise.all(bOn.flat().map((k) => cluster.pttl(k)));
  t.ok(bTtls.every((ms) => ms === -1), 'the new checkpoint\'s segments keep no TTL');
  await assertStoreAgrees(t, { redis: cluster, expect: { 'cb/plain': committed(stateDict(1, 8)), 'cb/resharded': committed(stateDict(2, 16)), 'cr/a': absent, 'cr/b': committed(sd) } });
  await catalog.delete('cr/b', { recycleTtlMs: 0 });
});

/** A master that holds data but not `id`'s control slot and has a live replica, and its server. */
async function victimFor(id: string): Promise<{ info: NodeInfo; server: RedisServer }> {
  const nodes = await topology();
  const control = ownerOf(nodes, keySlot(space.checkpoint(id).state));
  const info = nodes.find((n) => n.master && n.id !== control.id && n.slots.length > 0 && nodes.some((r) => r.replicaOf === n.id && r.alive))!;
  return { info, server: fixture.nodes.find((s) => s.port === info.port)! };
}

async function promoted(victim: NodeInfo): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const nodes = await topology().catch(() => []);
    const owner = nodes.find((n) => n.master && n.slots.some(([a]) => a === victim.slots[0]![0]));
    if (owner && owner.id !== victim.id) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('no replica was promoted');
}

t.test('a master killed during a load: its replica takes over and the load completes bit for bit; nothing committed is lost', async (t) => {
  const id = 'cb/failover-load';
  const sd = stateDict(3, 16);
  // No waiting for replication here: the save WAITed for each master's replica before it committed.
  await save(sd, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes: SEGMENT }) });
  const victim = await victimFor(id);
  let killed = false;
  class KillingReader extends RedisStorageReader {
    override async readData(...args: Parameters<RedisStorageReader['readData']>): Promise<void> {
      const reading = super.readData(...args);
      await victim.server.kill();
      killed = true;
      return reading;
    }
  }
  const dest = { w: new Tensor('float32', [(16 * 2 ** 20) / 4]), step: 0 };
  const began = Date.now();
  const reader = new KillingReader({ redis: cluster, maxInFlight: 2 });
  await load(dest, { checkpointId: id, storageReader: reader });
  await reader.close();
  t.ok(killed, `master ${victim.info.port} killed during the load, which took ${Date.now() - began} ms`);
  t.equal(Buffer.compare(Buffer.from(dest.w.bytes), Buffer.from((sd.w as Tensor).bytes)), 0, 'loaded bit for bit');
  await promoted(victim.info);
  await assertStoreAgrees(t, { redis: cluster, expect: { 'cb/plain': committed(stateDict(1, 8)), 'cb/resharded': committed(stateDict(2, 16)), [id]: committed(sd) } });
});

t.test('a master killed during a save: the save fails with REDIS_UNAVAILABLE, is not committed, and what was committed still loads', async (t) => {
  const id = 'cb/failover-save';
  const victim = await victimFor(id);
  const n = segmentSizes(16 * 2 ** 20, SEGMENT).length;
  beforeSet = async (count) => {
    if (count === Math.floor(n / 3)) await victim.server.kill();
  };
  calls.set = 0;
  const err = await save(stateDict(4, 16), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis: cluster, segmentBytes: SEGMENT }) }).then(
    () => undefined,
    (e: unknown) => e as Error & { failures?: Map<number, Error & { code?: string }> },
  );
  beforeSet = undefined;
  const cause = err?.failures?.get(0) ?? err;
  t.equal((cause as { code?: string } | undefined)?.code, 'REDIS_UNAVAILABLE', `the save failed: ${cause?.message}`);
  await promoted(victim.info);
  // The aborted save's keys on the lost master's slots may outlive the abort (it ran before the failover): they stay indexed, so a later delete or gc collects them.
  await assertStoreAgrees(t, { redis: cluster, expect: { 'cb/plain': committed(stateDict(1, 8)), 'cb/resharded': committed(stateDict(2, 16)), 'cb/failover-load': committed(stateDict(3, 16)), [id]: incomplete } });
});
