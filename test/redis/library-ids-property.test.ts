/**
 * Property-based tests (fast-check, fixed seeds) of checkpoint ids and key prefixes through
 * every library entry point that takes one: RedisStorageWriter / RedisStorageReader
 * (constructor and reset), save and load (with a storage object, and by a redis:// id
 * alone), CheckpointCatalog get / validate / delete / list({ prefix, cursor }), KeySpace,
 * and the `prefix` option of the writer, reader, catalog and buildApp.
 *
 * How a stray access is caught, without MONITOR:
 * - the library connects as the `default` user, whose ACL allows only keys matching
 *   `<prefix>:*`: a command on any other key is refused and logged in ACL LOG, which must
 *   stay empty;
 * - INFO commandstats and total_connections_received are read around every call: an
 *   invalid id or prefix must be refused with its typed error before a single command is
 *   sent or a connection opened;
 * - sentinel keys outside the namespace (and a committed checkpoint inside it) are
 *   snapshotted with DUMP and PTTL; a valid id may only create keys of its own checkpoint,
 *   and after its delete the keyspace is back to what it was (the fencing counter aside).
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import t from 'tap';
import '../../src/index.js'; // registers the Redis backend for save/load by redis:// id alone
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { checkpointIdProblem, parseCheckpointId } from '../../src/redis/checkpoint-id.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp } from '../../src/server/app.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { hexKey, snapshot, unhex, type Snapshot } from '../helpers/keyspace.js';
import { anyString, specValid, validIdExcept } from '../helpers/id-arbitraries.js';
import { RedisServer } from '../helpers/redis-server.js';

const PREFIX = 'dcp';
const SEED = 20261130;
const KEEP = 'keep/me';

// ---------------------------------------------------------------------------------------
// Generators (the same shapes as test/server/route-ids-property.test.ts)

/** Key prefixes: 1-64 characters of letters, digits and . _ - : (docs/format.md). */
function specValidPrefix(prefix: string): boolean {
  return /^[A-Za-z0-9._\-:]{1,64}$/.test(prefix);
}

const validId = validIdExcept([KEEP]);

// ---------------------------------------------------------------------------------------
// The private Redis: an inspector user sees everything, the library's default user only <prefix>:*

const server = await RedisServer.start();
const redis = server.client(); // the default user; confined below
const inspectorPassword = randomBytes(16).toString('hex');
await redis.call('ACL', 'SETUSER', 'inspector', 'on', `>${inspectorPassword}`, '~*', '&*', '+@all');
const inspectorOptions = { host: '127.0.0.1', port: server.port, username: 'inspector', password: inspectorPassword, disableClientInfo: true, maxRetriesPerRequest: 3 };
const inspector = new Redis(inspectorOptions);
const inspectorDb1 = new Redis({ ...inspectorOptions, db: 1 });
const urlBase = `redis://127.0.0.1:${server.port}/0/`;

t.teardown(async () => {
  inspector.disconnect();
  inspectorDb1.disconnect();
  await server.stop();
});

async function confineTo(prefix: string): Promise<void> {
  await inspector.call('ACL', 'SETUSER', 'default', 'resetkeys', `~${prefix}:*`);
}

function floats(n: number, seed: number): Tensor {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed * 1000 + i) * 1e6;
  return new Tensor('float32', [n], data);
}

function reference(seed: number, id: string): StateDict {
  return { w: floats(1 + (seed % 97), seed), step: seed, tag: id };
}

/** Loads `id` into fresh tensors and compares every byte with `expected`. */
async function loadAndCompare(id: string, expected: StateDict, options: { prefix?: string; byUrl?: boolean } = {}): Promise<void> {
  const w = expected.w as Tensor;
  const destination: StateDict = { w: new Tensor('float32', [...w.shape]), step: null, tag: null };
  (destination.w as Tensor).bytes.fill(0xa5);
  if (options.byUrl) await load(destination, { checkpointId: `${urlBase}${id}` });
  else {
    const reader = new RedisStorageReader({ redis, ...(options.prefix ? { prefix: options.prefix } : {}) });
    try {
      await load(destination, { checkpointId: id, storageReader: reader });
    } finally {
      await reader.close();
    }
  }
  if (Buffer.compare(Buffer.from((destination.w as Tensor).bytes), Buffer.from(w.bytes)) !== 0) throw new Error(`${id}: tensor bytes differ after load`);
  if (destination.step !== expected.step || destination.tag !== expected.tag) throw new Error(`${id}: JSON values differ after load`);
}

async function saveWith(client: Redis, id: string, stateDict: StateDict, prefix = PREFIX): Promise<void> {
  const writer = new RedisStorageWriter({ redis: client, prefix });
  try {
    await save(stateDict, { checkpointId: id, storageWriter: writer });
  } finally {
    await writer.close();
  }
}

// Sentinels outside the namespace, then a committed checkpoint inside it.
await saveWith(inspector, KEEP, { w: floats(17, 9) }, 'dcpx');
await inspector.set('other:key', 'untouchable');
await inspector.set('dcp', 'the bare prefix');
await inspector.hset('dcp-ckpt:{keep/me}:state', 'committedSaveId', 'x');
await inspector.set(':dcp:ckpt:{keep/me}:meta', '{}');
await inspector.zadd('{dcp}:catalog', 1, KEEP);
await inspector.set('DCP:catalog', 'case');
await inspector.set('dcp*', 'glob star');
await inspector.set('dcp?', 'glob question');
await inspector.set('dcp[:]x', 'glob class');
await inspector.set('dcp\uFF1Acatalog', 'fullwidth colon');
await inspector.set(Buffer.from('dcp\u0000:catalog'), 'nul');
await inspector.set('dcpdata:keep/me:x:0:0', 'no colon after prefix');
await inspector.set('other:expiring', 'ttl', 'EX', '100000');
await inspectorDb1.hset('dcp:ckpt:{keep/me}:state', 'committedSaveId', 'db1');
await inspectorDb1.zadd('dcp:catalog', 1, KEEP);
await confineTo(PREFIX);
const KEEP_REFERENCE = reference(4242, KEEP);
await saveWith(redis, KEEP, KEEP_REFERENCE);

const catalog = new CheckpointCatalog({ redis });
t.teardown(() => catalog.close());

// ---------------------------------------------------------------------------------------
// Observation helpers


const catalogEntries = async () => JSON.stringify(await inspector.zrange(`${PREFIX}:catalog`, '0', '-1', 'WITHSCORES'));
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function diff(before: Snapshot, after: Snapshot, ignore: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (!ignore.has(k) && after.get(k) !== v) out.push(`${after.has(k) ? 'changed' : 'removed'} ${JSON.stringify(unhex(k))}`);
  for (const k of after.keys()) if (!ignore.has(k) && !before.has(k)) out.push(`created ${JSON.stringify(unhex(k))}`);
  return out;
}

interface Counters {
  readonly commands: string[];
  readonly connections: number;
}

/** Commands served since the last CONFIG RESETSTAT (the inspector's INFO and CONFIG aside) and connections accepted. */
async function counters(): Promise<Counters> {
  const info = await inspector.info();
  const commands: string[] = [];
  for (const [, name, calls] of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (!/^(info|config)\b/.test(name!)) commands.push(`${name}x${calls}`);
  }
  return { commands, connections: Number(/^total_connections_received:(\d+)/m.exec(info)?.[1]) };
}

async function aclDenials(): Promise<string[]> {
  const log = (await inspector.call('ACL', 'LOG')) as unknown[][];
  return log.map((entry) => JSON.stringify(entry));
}

/** Runs `body` and fails if it sent any command or opened any connection. */
async function withoutRedis<T>(what: string, body: () => Promise<T>): Promise<T> {
  await inspector.config('RESETSTAT');
  const before = await counters();
  const result = await body();
  const after = await counters();
  if (after.commands.length > 0) throw new Error(`${what}: commands reached Redis: ${after.commands.join(' ')}`);
  if (after.connections !== before.connections) throw new Error(`${what}: ${after.connections - before.connections} connection(s) opened`);
  return result;
}

async function noDenials(what: string): Promise<void> {
  const denied = await aclDenials();
  if (denied.length > 0) {
    await inspector.call('ACL', 'LOG', 'RESET'); // so the next run (and any shrinking) is judged on its own
    throw new Error(`${what}: a key outside the namespace was touched: ${denied[0]}`);
  }
}

interface Caught {
  readonly code?: unknown;
  readonly rule?: unknown;
  readonly message?: unknown;
  readonly failures?: Map<number, Caught>;
}

/**
 * The error `body` throws or rejects with (undefined when it succeeds). A collective step
 * (save/load) reports rank failures as CHECKPOINT_FAILED; with one rank, its failure is the error.
 */
async function caught(body: () => unknown): Promise<Caught | undefined> {
  try {
    await body();
    return undefined;
  } catch (err) {
    const e = err as Caught;
    return e.code === 'CHECKPOINT_FAILED' && e.failures?.size === 1 ? e.failures.get(0) : e;
  }
}

function expectCode(what: string, err: { code?: unknown; message?: unknown } | undefined, code: string): void {
  if (err?.code !== code) throw new Error(`${what}: expected ${code}, got ${err === undefined ? 'success' : `${String(err.code)} ${String(err.message)}`}`);
}

const initial = await snapshot(inspector);
const initialDb1 = await snapshot(inspectorDb1);
const initialCatalog = await catalogEntries();
/** Keys that exist before any property runs: a valid prefix under test must own none of them. */
const sentinelNamespaces = [...initial.keys()].map(unhex);

// ---------------------------------------------------------------------------------------
// Properties

t.test('the id rules: the library accepts exactly the ids docs/format.md allows, bare or in a redis:// URL', async (t) => {
  fc.assert(
    fc.property(fc.oneof(anyString, validId), fc.constantFrom('', 'redis://h:6379/0/', 'rediss://u:p@h:1/15/', 'redis://h/0/', 'redis://h:1/x/', 'redis://'), (name, scheme) => {
      const id = scheme + name;
      if (scheme === '') {
        const problem = checkpointIdProblem(id);
        if ((problem === undefined) !== specValid(id)) throw new Error(`${JSON.stringify(id)}: library says ${problem ?? 'valid'}, the docs say ${specValid(id) ? 'valid' : 'invalid'}`);
      }
      const urlShaped = /^rediss?:\/\/[^/]+\/\d+\/.+$/.test(id);
      const expectName = urlShaped ? id.replace(/^rediss?:\/\/[^/]+\/\d+\//, '') : id;
      let parsed: { name: string } | undefined;
      try {
        parsed = parseCheckpointId(id);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 'INVALID_CHECKPOINT_ID') throw err;
      }
      if ((parsed !== undefined) !== specValid(expectName)) throw new Error(`${JSON.stringify(id)}: parse ${parsed ? 'accepted' : 'refused'} it`);
      if (parsed && parsed.name !== expectName) throw new Error(`${JSON.stringify(id)}: namespace ${parsed.name}`);
    }),
    { seed: SEED, numRuns: 5000 },
  );
  t.pass('5000 ids: accepted iff they follow the documented rules');
});

/** Every entry point that takes an id, each expected to refuse `id` with INVALID_CHECKPOINT_ID (or NO_STORAGE when no backend recognises it). */
function entryPoints(id: string): Array<[string, () => unknown, string]> {
  const sd = (): StateDict => ({ w: floats(3, 1) });
  return [
    ['new RedisStorageWriter({ checkpointId })', () => new RedisStorageWriter({ redis, checkpointId: id }), 'INVALID_CHECKPOINT_ID'],
    ['new RedisStorageReader({ checkpointId })', () => new RedisStorageReader({ redis, checkpointId: id }), 'INVALID_CHECKPOINT_ID'],
    ['new RedisStorageWriter({ checkpointId }) without redis', () => new RedisStorageWriter({ checkpointId: id }), 'INVALID_CHECKPOINT_ID'],
    ['writer.reset', () => new RedisStorageWriter({ redis }).reset(id), 'INVALID_CHECKPOINT_ID'],
    ['reader.reset', () => new RedisStorageReader({ redis }).reset(id), 'INVALID_CHECKPOINT_ID'],
    ['save with a writer', () => save(sd(), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) }), 'INVALID_CHECKPOINT_ID'],
    ['save with a writer holding a valid id', () => save(sd(), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, checkpointId: 'fine/id' }) }), 'INVALID_CHECKPOINT_ID'],
    ['load with a reader', () => load(sd(), { checkpointId: id, storageReader: new RedisStorageReader({ redis }) }), 'INVALID_CHECKPOINT_ID'],
    ['save by id alone', () => save(sd(), { checkpointId: id }), 'NO_STORAGE'],
    ['load by id alone', () => load(sd(), { checkpointId: id }), 'NO_STORAGE'],
    ['catalog.get', () => catalog.get(id), 'INVALID_CHECKPOINT_ID'],
    ['catalog.validate', () => catalog.validate(id), 'INVALID_CHECKPOINT_ID'],
    ['catalog.validate deep', () => catalog.validate(id, { deep: true }), 'INVALID_CHECKPOINT_ID'],
    ['catalog.delete', () => catalog.delete(id), 'INVALID_CHECKPOINT_ID'],
    ['KeySpace.checkpoint', () => new KeySpace(PREFIX).checkpoint(id), 'INVALID_CHECKPOINT_ID'],
  ];
}

/** Invalid ids: bare, and inside a redis:// URL naming this very server (so a connection would show). */
const invalidId = fc
  .oneof(
    { arbitrary: anyString, weight: 4 },
    { arbitrary: anyString.map((name) => `${urlBase}${name}`), weight: 1 },
    { arbitrary: fc.constantFrom(`redis://127.0.0.1:${server.port}/x`, `redis://127.0.0.1:${server.port}/`, `redis://127.0.0.1:${server.port}`, `rediss://127.0.0.1:${server.port}/0/`), weight: 1 },
  )
  .filter((id) => {
    const name = /^rediss?:\/\/[^/]+\/\d+\/(.+)$/.exec(id)?.[1];
    return name === undefined ? !specValid(id) : !specValid(name);
  });

t.test('invalid ids: every entry point refuses them with the typed error before any command or connection', async (t) => {
  let checked = 0;
  await fc.assert(
    fc.asyncProperty(invalidId, async (id) => {
      await withoutRedis(JSON.stringify(id).slice(0, 80), async () => {
        for (const [what, call, code] of entryPoints(id)) {
          const err = await caught(call);
          expectCode(`${what} ${JSON.stringify(id).slice(0, 80)}`, err, code);
          if (code === 'INVALID_CHECKPOINT_ID') {
            const name = /^rediss?:\/\/[^/]+\/\d+\/(.+)$/.exec(id)?.[1] ?? id;
            const rule = checkpointIdProblem(name);
            if (rule !== undefined && !/^rediss?:\/\//.test(id) && (err as { rule?: unknown }).rule !== rule) throw new Error(`${what}: rule ${String((err as { rule?: unknown }).rule)}, expected ${rule}`);
          }
          checked++;
        }
      });
    }),
    { seed: SEED + 1, numRuns: 600 },
  );
  await noDenials('invalid ids');
  t.same(diff(initial, await snapshot(inspector)), [], 'the keyspace is unchanged');
  t.ok(checked >= 600 * 15, `${checked} refused calls, none reached Redis`);
});

t.test('valid ids: only keys of that checkpoint inside the namespace are created; load is bit for bit; delete restores the keyspace', async (t) => {
  let lifecycles = 0;
  let absentChecks = 0;
  await fc.assert(
    fc.asyncProperty(validId, fc.nat(10_000), fc.constantFrom('writer', 'url', 'twice'), fc.boolean(), async (id, seed, how, present) => {
      await inspector.call('ACL', 'LOG', 'RESET');
      const before = await snapshot(inspector);
      if (!present) {
        // Not there: every lookup says so and changes nothing.
        for (const [what, call] of [
          ['get', () => catalog.get(id)],
          ['validate', () => catalog.validate(id, { deep: true })],
          ['load', () => loadAndCompare(id, reference(seed, id))],
        ] as Array<[string, () => Promise<unknown>]>) {
          expectCode(`${what} ${id}`, await caught(call), 'CHECKPOINT_NOT_FOUND');
        }
        if ((await catalog.delete(id)) !== false) throw new Error(`delete of absent ${id} did not resolve false`);
        const changes = diff(before, await snapshot(inspector));
        if (changes.length > 0) throw new Error(`looking up absent ${id} changed the keyspace: ${changes.slice(0, 3).join('; ')}`);
        await noDenials(id);
        absentChecks++;
        return;
      }
      const entriesBefore = await catalogEntries();
      const expected = reference(seed, id);
      if (how === 'url') await save(expected, { checkpointId: `${urlBase}${id}` });
      else {
        if (how === 'twice') await saveWith(redis, id, reference(seed + 1, id));
        await saveWith(redis, id, expected);
      }
      const saved = await snapshot(inspector);
      const own = new RegExp(`^${PREFIX}:(ckpt:\\{${escapeRegExp(id)}\\}:(state|meta|saves|keys:[A-Za-z0-9_-]+)|data:${escapeRegExp(id)}:[A-Za-z0-9_-]+:\\d+:\\d+)$`);
      const globals = new Set([hexKey(`${PREFIX}:catalog`), hexKey(`${PREFIX}:fence`)]);
      const foreign = diff(before, saved, globals).filter((c) => !(c.startsWith('created ') && own.test(JSON.parse(c.slice(8)) as string)));
      if (foreign.length > 0) throw new Error(`saving ${id} touched other keys: ${foreign.slice(0, 5).join('; ')}`);

      await loadAndCompare(id, expected, { byUrl: how === 'url' });
      const details = await catalog.get(id);
      if (details.id !== id || details.state !== 'committed') throw new Error(`get ${id}: ${details.id} ${details.state}`);
      const report = await catalog.validate(id, { deep: true });
      if (!report.ok) throw new Error(`validate ${id}: ${JSON.stringify(report.problems)}`);
      const listed = await catalog.list({ prefix: id, limit: 1000 });
      if (!listed.items.some((i) => i.id === id) || !listed.items.every((i) => i.id.startsWith(id))) throw new Error(`list({ prefix: ${id} }) gave ${JSON.stringify(listed.items.map((i) => i.id))}`);

      if ((await catalog.delete(id)) !== true) throw new Error(`delete of committed ${id} did not resolve true`);
      const after = await snapshot(inspector);
      // The fencing counter moved on; the catalog holds what it held (its encoding may differ).
      const left = diff(before, after, globals);
      if ((await catalogEntries()) !== entriesBefore) left.push('the catalog entries changed');
      if (left.length > 0) throw new Error(`after deleting ${id}: ${left.slice(0, 5).join('; ')}`);
      await noDenials(id);
      lifecycles++;
    }),
    { seed: SEED + 2, numRuns: 300 },
  );
  t.ok(lifecycles > 100 && absentChecks > 100, `${lifecycles} save/load/get/validate/list/delete cycles, ${absentChecks} absent ids looked up`);
});

t.test('list({ prefix, cursor, limit }): any string only filters; bad cursors and limits are refused before Redis', async (t) => {
  const counts = { pages: 0, refused: 0 };
  const cursor = fc.oneof(
    anyString,
    fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/),
    fc.record({ s: fc.oneof(fc.double(), fc.integer()), m: anyString }).map((c) => Buffer.from(JSON.stringify(c)).toString('base64url')),
    fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')),
  );
  const limit = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constantFrom(0, -1, 1001, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53));
  await fc.assert(
    fc.asyncProperty(fc.oneof(anyString, validId, fc.constantFrom('', 'k', 'keep', 'keep/', KEEP, 'kee*', 'keep/?e', 'keep/[m]e')), fc.option(cursor, { nil: undefined }), fc.option(limit, { nil: undefined }), async (prefix, cur, lim) => {
      await inspector.config('RESETSTAT');
      const options = { prefix, ...(cur !== undefined ? { cursor: cur } : {}), ...(lim !== undefined ? { limit: lim } : {}) };
      const err = await caught(async () => {
        const page = await catalog.list(options);
        for (const item of page.items) {
          if (!item.id.startsWith(prefix) || item.id !== KEEP) throw new Error(`list(${JSON.stringify(options).slice(0, 100)}) gave ${item.id}`);
        }
        if (!cur && (lim === undefined || lim >= 2) && KEEP.startsWith(prefix) && page.items.length !== 1) throw new Error(`list(${JSON.stringify(options).slice(0, 100)}) missed ${KEEP}`);
      });
      const { commands } = await counters();
      if (err === undefined) {
        counts.pages++;
        // Only the catalog index and the state hash of a listed checkpoint are read.
        if (!commands.every((c) => /^(time|zrange|hgetall)x\d+$/.test(c))) throw new Error(`list sent ${commands.join(' ')}`);
      } else {
        if (err.code !== 'INVALID_CURSOR' && err.code !== 'INVALID_LIMIT') throw new Error(`list(${JSON.stringify(options).slice(0, 100)}) failed: ${String(err.code)} ${String(err.message)}`);
        if (commands.length > 0) throw new Error(`a refused list sent ${commands.join(' ')}`);
        counts.refused++;
      }
    }),
    { seed: SEED + 3, numRuns: 600 },
  );
  await noDenials('list');
  t.ok(counts.pages > 100 && counts.refused > 100, `${counts.pages} pages, ${counts.refused} refused`);
});

t.test('key prefixes: invalid ones are refused by every constructor; valid ones keep every key under "<prefix>:"', async (t) => {
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(fc.oneof(anyString, fc.constantFrom('', 'dcp:{x}', 'dcp*', 'a'.repeat(65), 'dcp/x', 'dcp ', 'd\u0000cp')).filter((p) => !specValidPrefix(p)), async (prefix) => {
      await withoutRedis(`prefix ${JSON.stringify(prefix).slice(0, 60)}`, async () => {
        for (const [what, call] of [
          ['KeySpace', () => new KeySpace(prefix)],
          ['RedisStorageWriter', () => new RedisStorageWriter({ redis, prefix, checkpointId: 'fine/id' })],
          ['RedisStorageReader', () => new RedisStorageReader({ redis, prefix, checkpointId: 'fine/id' })],
          ['CheckpointCatalog', () => new CheckpointCatalog({ redis, prefix })],
          ['buildApp', () => buildApp({ redis, prefix })],
        ] as Array<[string, () => unknown]>) {
          expectCode(`${what}({ prefix: ${JSON.stringify(prefix).slice(0, 60)} })`, await caught(call), 'INVALID_CHECKPOINT_ID');
          refused++;
        }
      });
    }),
    { seed: SEED + 4, numRuns: 300 },
  );
  t.ok(refused >= 1500, `${refused} constructions refused, none reached Redis`);

  // Valid prefixes, each in its own namespace: the default user may touch only "<prefix>:*".
  const validPrefix = fc
    .oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/), fc.constantFrom(':', '.', '-', '::', 'dcp:data', 'dcp.', 'a'.repeat(64), 'other:key:x'))
    .filter((p) => specValidPrefix(p) && !sentinelNamespaces.some((k) => k.startsWith(`${p}:`)));
  let cycles = 0;
  try {
    await fc.assert(
      fc.asyncProperty(validPrefix, validId, fc.nat(10_000), async (prefix, id, seed) => {
        await confineTo(prefix);
        await inspector.call('ACL', 'LOG', 'RESET');
        const before = await snapshot(inspector);
        const expected = reference(seed, id);
        await saveWith(redis, id, expected, prefix);
        const created = diff(before, await snapshot(inspector));
        const strays = created.filter((c) => !c.startsWith('created ') || !(JSON.parse(c.slice(8)) as string).startsWith(`${prefix}:`));
        if (strays.length > 0 || created.length === 0) throw new Error(`prefix ${prefix}: ${strays.slice(0, 5).join('; ') || 'nothing created'}`);
        await loadAndCompare(id, expected, { prefix });
        const own = new CheckpointCatalog({ redis, prefix });
        try {
          const page = await own.list();
          if (page.items.map((i) => i.id).join() !== id) throw new Error(`prefix ${prefix} lists ${JSON.stringify(page.items.map((i) => i.id))}`);
          if (!(await own.validate(id, { deep: true })).ok) throw new Error(`prefix ${prefix}: ${id} does not validate`);
          await own.delete(id);
        } finally {
          await own.close();
        }
        const left = diff(before, await snapshot(inspector));
        if (left.join() !== `created ${JSON.stringify(`${prefix}:fence`)}`) throw new Error(`prefix ${prefix} after delete: ${left.join('; ')}`);
        await noDenials(`prefix ${prefix}`);
        await inspector.del(`${prefix}:fence`);
        cycles++;
      }),
      { seed: SEED + 5, numRuns: 40 },
    );
  } finally {
    await confineTo(PREFIX);
  }
  t.equal(cycles, 40, 'each valid prefix: save, load, list, validate and delete stayed inside its namespace');
});

t.test('afterwards: sentinels byte-identical, the keyspace as seeded, the committed checkpoint intact', async (t) => {
  t.same(await aclDenials(), [], 'ACL LOG empty: no access outside the namespace was attempted');
  const now = await snapshot(inspector);
  t.same(diff(initial, now, new Set([hexKey(`${PREFIX}:fence`), hexKey(`${PREFIX}:catalog`)])), [], 'every key but the fencing counter and the catalog is byte-identical to the seeded keyspace');
  t.equal(await catalogEntries(), initialCatalog, 'the catalog holds exactly its seeded entries');
  t.ok([...now.keys()].map(unhex).every((k) => k.startsWith(`${PREFIX}:`) || initial.has(hexKey(k))), 'every key is in the namespace or a sentinel');
  t.same(diff(initialDb1, await snapshot(inspectorDb1)), [], 'db 1 untouched');
  await assertStoreAgrees(t, { redis, expect: { [KEEP]: committed(KEEP_REFERENCE) } });
  t.same(await aclDenials(), [], 'ACL LOG still empty');
});
