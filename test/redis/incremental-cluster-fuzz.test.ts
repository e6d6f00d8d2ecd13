/**
 * Fuzz of incremental saves on a 3-master Redis Cluster (seeded PRNG, test/helpers/prng.ts;
 * a failing run prints its seed): random sequences of incremental saves with random changes
 * (whole tensors, row ranges, nothing), saves that fail after claiming their pieces, two saves
 * racing for the same new pieces, a save beside the delete of a checkpoint sharing its pieces,
 * deletes and gc over three checkpoint ids sharing pieces, with the memory pre-flight on or off
 * per run. Then every committed checkpoint loads bit for bit and nothing unreferenced remains (assertStoreAgrees: per-tag counts, holders and tag sets), and
 * once all are deleted no key of the prefix is left on any master.
 */
import t from 'tap';
import type { Redis } from 'ioredis';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageWriter, type RedisStorageWriterOptions } from '../../src/redis/writer.js';
import { absent, assertStoreAgrees, committed, type Expectation } from '../helpers/invariants.js';
import { prng } from '../helpers/prng.js';
import { RedisClusterFixture } from '../helpers/redis-server.js';
import { seededTensor } from '../fixtures/incremental-data.js';
import { applyChange, COLS, copyOf, FailingWriter, IDS, ROWS, segmentBytes, TENSORS, type Change } from '../helpers/incremental-changes.js';

const cluster = await RedisClusterFixture.start(3);
const client = cluster.client();
const masters = () => client.nodes('master') as Redis[];
t.teardown(() => cluster.stop());

/** FUZZ_SEED=<seed> replays a run (its title names its seed) as run 0. */
const SEED = Number(process.env.FUZZ_SEED ?? 1313);
const RUNS = Number(process.env.FUZZ_RUNS ?? 24);


type Op =
  | { op: 'save'; id: number; changes: Change[]; fail: boolean }
  | { op: 'race'; ids: [number, number]; changes: Change[]; deleteSecond: boolean }
  | { op: 'delete'; id: number }
  | { op: 'gc' };

/** A random sequence of 4 to 12 operations. */
function randomOps(rng: () => number): Op[] {
  const int = (n: number) => Math.floor(rng() * n);
  const changes = (): Change[] =>
    Array.from({ length: int(4) }, (): Change => {
      const kind = int(3);
      if (kind === 0) return { kind: 'none' };
      if (kind === 1) return { kind: 'tensor', index: int(TENSORS), seed: 1 + int(6) };
      return { kind: 'rows', index: int(TENSORS), from: int(ROWS), count: 1 + int(8), delta: 1 + int(3) };
    });
  return Array.from({ length: 4 + int(9) }, (): Op => {
    const r = rng();
    if (r < 0.5) return { op: 'save', id: int(IDS.length), changes: changes(), fail: int(5) === 0 };
    if (r < 0.65) {
      const first = int(IDS.length);
      return { op: 'race', ids: [first, (first + 1 + int(IDS.length - 1)) % IDS.length], changes: changes(), deleteSecond: rng() < 0.5 };
    }
    if (r < 0.85) return { op: 'delete', id: int(IDS.length) };
    return { op: 'gc' };
  });
}



const keysOnMasters = async (pattern: string) => (await Promise.all(masters().map((n) => n.keys(pattern)))).flat().sort();
const setMaxMemory = (bytes: string) => Promise.all(masters().map((n) => n.config('SET', 'maxmemory', bytes)));

for (let run = 0; run < RUNS; run++) {
  const seed = SEED + run;
  t.test(`run ${run} (seed ${seed}): random incremental saves, failed and racing saves, deletes and gc on a Cluster`, async (t) => {
    const rng = prng(seed);
    const preflight = rng() < 0.5; // the memory pre-flight (and its id reuse) runs only when Redis has a maxmemory
    await setMaxMemory(preflight ? String(1024 * 1024 * 1024) : '0');
    const ops = randomOps(rng);
    t.comment(`pre-flight ${preflight ? 'on' : 'off'}: ${ops.map((o) => o.op).join(' ')}`);
    const prefix = `cfz${run}`;
    const catalog = new CheckpointCatalog({ redis: client, prefix });
    const options = (): RedisStorageWriterOptions => ({ redis: client, prefix, incremental: true, segmentBytes });
    const model = new Map<string, StateDict>();
    let current: StateDict = { step: 0 };
    for (let i = 0; i < TENSORS; i++) current[`t${i}`] = seededTensor(ROWS, COLS, i + 1);
    const next = (changes: readonly Change[]) => {
      const out = copyOf(current);
      for (const c of changes) applyChange(out, c);
      out.step = (current.step as number) + 1;
      return out;
    };
    try {
      for (const o of ops) {
        if (o.op === 'save') {
          const sd = next(o.changes);
          const id = IDS[o.id]!;
          const ok = await save(sd, { checkpointId: id, storageWriter: new (o.fail ? FailingWriter : RedisStorageWriter)(options()) }).then(() => true, () => false);
          t.equal(ok, !o.fail, `save ${id}${o.fail ? ' (failing)' : ''}`);
          if (ok) {
            model.set(id, sd);
            current = sd;
          }
        } else if (o.op === 'race' && !o.deleteSecond) {
          // Two checkpoints saving the same new pieces side by side (claims per tag interleave).
          const sd = next(o.changes);
          const ids = o.ids.map((i) => IDS[i]!);
          const oks = await Promise.all(ids.map((id) => save(copyOf(sd), { checkpointId: id, storageWriter: new RedisStorageWriter(options()) }).then(() => true, () => false)));
          t.same(oks, [true, true], `saves of ${ids.join(' and ')} side by side`);
          for (const id of ids) model.set(id, sd);
          current = sd;
        } else if (o.op === 'race') {
          // A save beside the delete of another checkpoint that holds many of the same pieces.
          const sd = next(o.changes);
          const [id, other] = o.ids.map((i) => IDS[i]!) as [string, string];
          const exists = (await client.exists(new KeySpace(prefix).checkpoint(other).state)) === 1;
          const [ok, deleted] = await Promise.all([save(sd, { checkpointId: id, storageWriter: new RedisStorageWriter(options()) }).then(() => true, () => false), catalog.delete(other)]);
          t.same([ok, deleted], [true, exists], `save of ${id} beside the delete of ${other}`);
          model.set(id, sd);
          model.delete(other);
          current = sd;
        } else if (o.op === 'delete') {
          const id = IDS[o.id]!;
          const exists = (await client.exists(new KeySpace(prefix).checkpoint(id).state)) === 1;
          t.equal(await catalog.delete(id), exists, `delete ${id}: ${exists}`);
          model.delete(id);
        } else {
          await catalog.gc({ incompleteOlderThanMs: 0 }); // releases dead saves' holds and sweeps stray pieces too
        }
      }
      // A failed first save leaves an incomplete checkpoint: gc collects it before the check.
      await catalog.gc({ incompleteOlderThanMs: 0 });
      const expect: Record<string, Expectation> = {};
      for (const id of IDS) expect[id] = model.has(id) ? committed(model.get(id)!) : absent;
      await assertStoreAgrees(t, { redis: client, prefix, expect });
      for (const id of IDS) await catalog.delete(id);
      t.same(await keysOnMasters(`${prefix}:*`).then((keys) => keys.filter((k) => k !== `${prefix}:catalog` && k !== `${prefix}:fence`)), [], 'all deleted: no key of the prefix left on any master');
    } finally {
      await catalog.close();
    }
  });
}
