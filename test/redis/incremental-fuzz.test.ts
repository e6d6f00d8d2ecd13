/**
 * Fuzz of incremental saves (fast-check, fixed seed): random sequences of incremental saves
 * with random changes (whole tensors, row ranges, nothing), saves that fail after claiming
 * their pieces, deletes, gc and piece sweeps over three checkpoint ids sharing pieces; then
 * every committed checkpoint loads bit for bit and nothing unreferenced remains
 * (assertStoreAgrees), and once all are deleted no piece is left.
 */
import t from 'tap';
import fc from 'fast-check';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { KeySpace } from '../../src/redis/keys.js';
import { absent, assertStoreAgrees, committed, type Expectation } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';
import { seededTensor } from '../fixtures/incremental-data.js';
import { applyChange, COLS, copyOf, FailingWriter, IDS, ROWS, segmentBytes, TENSORS, type Change } from '../helpers/incremental-changes.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());



type Op = { op: 'save'; id: number; changes: Change[]; fail: boolean } | { op: 'delete'; id: number } | { op: 'gc' };

const change: fc.Arbitrary<Change> = fc.oneof(
  fc.constant<Change>({ kind: 'none' }),
  fc.record({ kind: fc.constant<'tensor'>('tensor'), index: fc.nat(TENSORS - 1), seed: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant<'rows'>('rows'), index: fc.nat(TENSORS - 1), from: fc.nat(ROWS - 1), count: fc.integer({ min: 1, max: 8 }), delta: fc.integer({ min: 1, max: 3 }) }),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant<'save'>('save'), id: fc.nat(IDS.length - 1), changes: fc.array(change, { maxLength: 3 }), fail: fc.nat(4).map((n) => n === 0) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant<'delete'>('delete'), id: fc.nat(IDS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant<'gc'>('gc') }) },
);



let run = 0;
t.test('random incremental saves, failed saves, deletes and gc: committed checkpoints load bit for bit, nothing unreferenced remains', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 4, maxLength: 14 }), async (ops) => {
      const prefix = `fz${run++}`;
      const catalog = new CheckpointCatalog({ redis, prefix });
      const model = new Map<string, StateDict>();
      let current: StateDict = { step: 0 };
      for (let i = 0; i < TENSORS; i++) current[`t${i}`] = seededTensor(ROWS, COLS, i + 1);
      try {
        for (const o of ops) {
          if (o.op === 'save') {
            const next = copyOf(current);
            for (const c of o.changes) applyChange(next, c);
            next.step = (current.step as number) + 1;
            const id = IDS[o.id]!;
            const Writer = o.fail ? FailingWriter : RedisStorageWriter;
            const ok = await save(next, { checkpointId: id, storageWriter: new Writer({ redis, prefix, incremental: true, segmentBytes }) }).then(
              () => true,
              () => false,
            );
            if (o.fail && ok) throw new Error('the failing writer committed');
            if (ok) {
              model.set(id, next);
              current = next;
            }
          } else if (o.op === 'delete') {
            const id = IDS[o.id]!;
            const exists = (await redis.exists(new KeySpace(prefix).checkpoint(id).state)) === 1;
            t.equal(await catalog.delete(id), exists, `delete ${id}: ${exists}`);
            model.delete(id);
          } else {
            await catalog.gc({ incompleteOlderThanMs: 0 }); // sweeps stray pieces too
          }
        }
        // A failed first save leaves an incomplete checkpoint: gc collects it before the check.
        await catalog.gc({ incompleteOlderThanMs: 0 });
        const expect: Record<string, Expectation> = {};
        for (const id of IDS) expect[id] = model.has(id) ? committed(model.get(id)!) : absent;
        await assertStoreAgrees(t, { redis, prefix, expect });
        for (const id of IDS) await catalog.delete(id);
        t.same(await redis.keys(`${prefix}:blob*`), [], 'all deleted: no piece and no count left');
      } finally {
        await catalog.close();
      }
    }),
    { seed: 1313, numRuns: 25, endOnFailure: true },
  );
});
