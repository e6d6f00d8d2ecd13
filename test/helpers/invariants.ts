/**
 * The end-of-scenario check every fault test runs: what the test believes happened
 * (which checkpoints committed, with which bytes; which never did) must agree with
 * what loading, the catalog, `validate --deep` and the raw keyspace say.
 *
 * Why one harness: each scenario used to check a different subset; a committed
 * checkpoint that stops loading, a listed id with no state, or data keys that no save
 * index owns (garbage nothing will ever collect) must fail every scenario alike.
 */
import type { Test } from 'tap';
import { Cluster, type Redis } from 'ioredis';
import { CheckpointError } from '../../src/core/errors.js';
import { load } from '../../src/core/load.js';
import type { StateDict, StateDictValue } from '../../src/core/state-dict.js';
import { ShardedTensor, Tensor } from '../../src/core/tensor.js';
import { CheckpointCatalog, type CheckpointSummary, type ProblemKind } from '../../src/redis/catalog.js';
import { DEFAULT_PREFIX, KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { COLS, ROWS, expectedValue } from '../fixtures/rank-data.js';
import { isPieceKey, piecesAgree } from './piece-invariants.js';

export type Expectation =
  /** Committed and loadable into `reference`'s shapes with exactly these values (tensors as whole, unsharded tensors). */
  | { readonly state: 'committed'; readonly reference: StateDict }
  /** Listed, never loadable: a save that started and did not commit (nothing committed before it). */
  | { readonly state: 'incomplete' }
  /** No trace at all: not listed, not found by load or validate, no control or data key. */
  | { readonly state: 'absent' }
  /**
   * Committed, then damaged behind the library's back (a segment flipped, truncated or
   * deleted; metadata tampered with): listed committed, loading into `reference`'s shapes
   * fails with a damage code (never a wrong value), and deep validation reports problems of
   * exactly the kinds in `problems`. Its keys still belong to indexed saves.
   */
  | { readonly state: 'damaged'; readonly reference: StateDict; readonly problems: readonly ProblemKind[] };

export interface StoreCheck {
  /** A standalone client, or a Cluster client (every master's keys are checked). */
  readonly redis: Redis | Cluster;
  readonly prefix?: string;
  readonly expect: Readonly<Record<string, Expectation>>;
  /** The catalog must list exactly the ids expected to exist (default true). */
  readonly exhaustive?: boolean;
  /** Ids a load may still pin (a loader that was killed: its pin lapses after pinTtlMs). Default none. */
  readonly pinned?: readonly string[];
}

/** What test/fixtures/rank.ts saves with SEED=seed, as one unsharded state dict. */
export function rankFixtureReference(seed: number): StateDict {
  const data = new Float32Array(ROWS * COLS);
  for (let i = 0; i < data.length; i++) data[i] = expectedValue(seed, Math.floor(i / COLS), i % COLS);
  return { w: new Tensor('float32', [ROWS, COLS], data), seed };
}

export const committed = (reference: StateDict): Expectation => ({ state: 'committed', reference });
export const incomplete: Expectation = { state: 'incomplete' };
export const absent: Expectation = { state: 'absent' };
export const damaged = (reference: StateDict, ...problems: ProblemKind[]): Expectation => ({ state: 'damaged', reference, problems });

/** Codes a load of a damaged committed checkpoint may fail with. */
const DAMAGE_CODES = ['CHECKSUM_MISMATCH', 'DATA_MISSING', 'METADATA_INVALID'];

/** The code of a load() failure: the reader's, inside load()'s CheckpointError. */
function loadFailureCode(err: unknown): string | undefined {
  const cause = err instanceof CheckpointError ? err.failures.get(0) : err;
  return (cause as { code?: string } | undefined)?.code;
}

const SENTINEL_BYTE = 0xa5;

/** A destination shaped like `reference`: tensors full of a sentinel byte, bytes and JSON values blank. */
function destinationFor(value: StateDictValue): StateDictValue {
  if (value instanceof Tensor) {
    const t = new Tensor(value.dtype, value.shape);
    t.bytes.fill(SENTINEL_BYTE);
    return t;
  }
  if (value instanceof ShardedTensor) throw new Error('references hold whole tensors, not ShardedTensors');
  if (value instanceof Uint8Array) return new Uint8Array(0);
  if (Array.isArray(value)) return value.map(destinationFor);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, destinationFor(v as StateDictValue)]));
  return null;
}

/** Paths where `actual` differs from `expected` (tensors compared byte for byte). */
function differences(expected: StateDictValue, actual: StateDictValue, path: string, out: string[]): void {
  if (expected instanceof Tensor) {
    if (!(actual instanceof Tensor) || actual.dtype !== expected.dtype || Buffer.compare(Buffer.from(actual.bytes), Buffer.from(expected.bytes)) !== 0) {
      const a = actual instanceof Tensor ? Buffer.from(actual.bytes) : undefined;
      const e = Buffer.from(expected.bytes);
      const first = a ? e.findIndex((b, i) => a[i] !== b) : -1;
      out.push(`${path}: tensor differs${first >= 0 ? ` (first at byte ${first} of ${e.length})` : ''}`);
    }
    return;
  }
  if (expected instanceof Uint8Array) {
    if (!(actual instanceof Uint8Array) || Buffer.compare(Buffer.from(actual), Buffer.from(expected)) !== 0) out.push(`${path}: bytes differ`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) out.push(`${path}: list differs`);
    else expected.forEach((v, i) => differences(v, actual[i]!, `${path}[${i}]`, out));
    return;
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') out.push(`${path}: not a dict`);
    else for (const [k, v] of Object.entries(expected)) differences(v as StateDictValue, (actual as Record<string, StateDictValue>)[k]!, path ? `${path}.${k}` : k, out);
    return;
  }
  if (JSON.stringify(actual) !== JSON.stringify(expected)) out.push(`${path}: ${JSON.stringify(actual)} ≠ ${JSON.stringify(expected)}`);
}

async function allKeys(client: Redis | Cluster): Promise<string[]> {
  const keys: string[] = [];
  for (const redis of client instanceof Cluster ? client.nodes('master') : [client]) {
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
  }
  return keys;
}

async function listAll(catalog: CheckpointCatalog): Promise<CheckpointSummary[]> {
  const items: CheckpointSummary[] = [];
  let cursor: string | undefined;
  do {
    const page = await catalog.list({ limit: 1000, ...(cursor ? { cursor } : {}) });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return items;
}

/** Which checkpoint a key of this prefix belongs to, and which save for data keys. */
function ownerOf(key: string, prefix: string): { id: string; saveId?: string } | 'global' | undefined {
  // Global keys, and the segment pool (retired segments, recycled by later saves or expiring).
  if (key === `${prefix}:catalog` || key === `${prefix}:fence` || key === `${prefix}:pool` || key.startsWith(`${prefix}:pool:`)) return 'global';
  // Pieces of incremental saves and their counts: checked by piecesAgree.
  if (isPieceKey(key, prefix)) return 'global';
  const control = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:ckpt:\\{(.+)\\}:(state|meta|saves|lock|pins|keys:[^:]+|pieces:[^:]+|ptags:[^:]+)$`).exec(key);
  const saveOf = /^(pieces|ptags):/.exec(control?.[2] ?? '');
  if (control) return saveOf ? { id: control[1]!, saveId: control[2]!.slice(saveOf[0].length) } : { id: control[1]! };
  const dataPrefix = `${prefix}:data:`;
  if (key.startsWith(dataPrefix)) {
    const parts = key.slice(dataPrefix.length).split(':');
    if (parts.length < 4) return undefined;
    return { id: parts.slice(0, -3).join(':'), saveId: parts.at(-3)! };
  }
  return undefined;
}

/**
 * Asserts, for every expected id: committed ones load bit for bit (in one process, into
 * whole tensors, whatever sharding saved them), are listed `committed` and deep-validate
 * clean; incomplete ones are listed, refuse to load and fail validation as not committed;
 * damaged ones are listed committed, refuse to load and validate with exactly the expected
 * problem kinds; absent ones are not found by the catalog, load or validate, and have no
 * key. Then over the whole keyspace of the prefix: every data key belongs to a save that
 * the checkpoint's `saves` index records (so it is collectable; a save replaced by a commit
 * while a load pinned it, or one that was aborted or crashed, stays indexed until gc or the
 * next commit: pin-holds-overwrite.test.ts checks that those collect it), and no key belongs to an id the test did not expect (when exhaustive).
 */
export async function assertStoreAgrees(t: Test, check: StoreCheck): Promise<void> {
  const prefix = check.prefix ?? DEFAULT_PREFIX;
  const space = new KeySpace(prefix);
  const catalog = new CheckpointCatalog({ redis: check.redis, prefix });
  try {
    const listed = new Map((await listAll(catalog)).map((s) => [s.id, s]));
    for (const [id, expectation] of Object.entries(check.expect)) {
      const label = `${id} (${expectation.state})`;
      if (expectation.state === 'committed') {
        const destination = destinationFor(expectation.reference) as StateDict;
        const reader = new RedisStorageReader({ redis: check.redis, prefix });
        try {
          await load(destination, { checkpointId: id, storageReader: reader });
          const diff: string[] = [];
          differences(expectation.reference, destination, '', diff);
          t.same(diff, [], `${label}: loads bit for bit`);
        } catch (err) {
          t.fail(`${label}: load failed: ${(err as Error).message}`);
        } finally {
          await reader.close();
        }
        t.equal(listed.get(id)?.state, 'committed', `${label}: listed committed`);
        t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] }, `${label}: deep validation clean`);
      } else if (expectation.state === 'incomplete') {
        t.ok(listed.has(id) && listed.get(id)!.state !== 'committed', `${label}: listed and not committed (${listed.get(id)?.state})`);
        const reader = new RedisStorageReader({ redis: check.redis, prefix });
        const err = await load({}, { checkpointId: id, storageReader: reader }).then(() => undefined, (e: unknown) => e);
        await reader.close();
        t.equal(loadFailureCode(err), 'CHECKPOINT_NOT_COMMITTED', `${label}: refuses to load`);
        const report = await catalog.validate(id, { deep: true });
        t.equal(report.ok, false, `${label}: validation fails`);
        t.ok(report.problems.some((p) => p.kind === 'not_committed'), `${label}: validation says not committed`);
      } else if (expectation.state === 'damaged') {
        t.equal(listed.get(id)?.state, 'committed', `${label}: listed committed`);
        const reader = new RedisStorageReader({ redis: check.redis, prefix });
        const err = await load(destinationFor(expectation.reference) as StateDict, { checkpointId: id, storageReader: reader }).then(() => undefined, (e: unknown) => e);
        await reader.close();
        const code = loadFailureCode(err);
        t.ok(code !== undefined && DAMAGE_CODES.includes(code), `${label}: refuses to load (${code ?? 'it loaded'})`);
        const report = await catalog.validate(id, { deep: true });
        t.equal(report.ok, false, `${label}: validation fails`);
        t.same([...new Set(report.problems.map((p) => p.kind))].sort(), [...new Set(expectation.problems)].sort(), `${label}: validation reports ${expectation.problems.join(', ')}`);
      } else {
        t.notOk(listed.has(id), `${label}: not listed`);
        const reader = new RedisStorageReader({ redis: check.redis, prefix });
        const err = await load({}, { checkpointId: id, storageReader: reader }).then(() => undefined, (e: unknown) => e);
        await reader.close();
        t.equal(loadFailureCode(err), 'CHECKPOINT_NOT_FOUND', `${label}: load finds nothing`);
        const validated = await catalog.validate(id).then(() => undefined, (e: unknown) => (e as { code?: string }).code);
        t.equal(validated, 'CHECKPOINT_NOT_FOUND', `${label}: validate finds nothing`);
      }
    }

    const keys = await allKeys(check.redis);
    const savesOf = new Map<string, Set<string>>();
    const keysOf = new Map<string, string[]>();
    const strays: string[] = [];
    for (const key of keys) {
      if (!key.startsWith(`${prefix}:`) || key.startsWith(`${prefix}:pg:`)) continue;
      const owner = ownerOf(key, prefix);
      if (owner === 'global') continue;
      if (owner === undefined) {
        strays.push(key);
        continue;
      }
      if (owner.saveId !== undefined) {
        if (!savesOf.has(owner.id)) savesOf.set(owner.id, new Set(await check.redis.smembers(space.checkpoint(owner.id).saves)));
        if (!savesOf.get(owner.id)!.has(owner.saveId)) {
          // Cluster recycling pools retired data keys in place, with the pool TTL (cluster-pool.ts): expiring, not garbage.
          if (key.startsWith(`${prefix}:data:`) && (await check.redis.pttl(key)) > 0) continue;
          strays.push(key);
        }
      }
      keysOf.set(owner.id, [...(keysOf.get(owner.id) ?? []), key]);
    }
    t.same(strays, [], 'every key of the prefix is a control key or data of a save its checkpoint indexes (no uncollectable garbage)');
    // Load pins: none left once loads ended (unless a killed loader's may still lapse), and only on real checkpoints.
    const pinKeys = keys.filter((k) => k.startsWith(`${prefix}:ckpt:{`) && k.endsWith('}:pins'));
    const [seconds, micros] = await check.redis.time();
    const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    for (const key of pinKeys) {
      const owner = ownerOf(key, prefix) as { id: string };
      t.equal(await check.redis.exists(space.checkpoint(owner.id).state), 1, `pins of ${owner.id} belong to a checkpoint that exists`);
      const live = await check.redis.zcount(key, `(${nowMs}`, '+inf');
      if (!(check.pinned ?? []).includes(owner.id)) t.equal(live, 0, `${owner.id}: no load pin left after the loads ended`);
    }
    await piecesAgree(t, check.redis, prefix, keys);
    for (const [id, expectation] of Object.entries(check.expect)) {
      if (expectation.state === 'absent') t.same(keysOf.get(id) ?? [], [], `${id} (absent): no key left`);
    }
    if (check.exhaustive ?? true) {
      const expectedIds = Object.entries(check.expect).filter(([, e]) => e.state !== 'absent').map(([id]) => id).sort();
      t.same([...listed.keys()].sort(), expectedIds, 'the catalog lists exactly the checkpoints that exist');
      t.same([...keysOf.keys()].filter((id) => !(id in check.expect) || check.expect[id]!.state === 'absent').sort(), [], 'no keys of unexpected checkpoints');
    }
  } finally {
    await catalog.close();
  }
}
