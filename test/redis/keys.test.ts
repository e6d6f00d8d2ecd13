import t from 'tap';
import fc from 'fast-check';
import { checkpointIdProblem, isRedisCheckpointId, parseCheckpointId } from '../../src/redis/checkpoint-id.js';
import { DEFAULT_PREFIX, KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';

/** The Cluster hash slot input: the text between the first "{" and the next "}", if non-empty. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

t.test('control keys share one hash tag; data keys carry none', async (t) => {
  const keys = new KeySpace().checkpoint('run1/step-100');
  t.equal(DEFAULT_PREFIX, 'dcp');
  const control = [keys.state, keys.meta, keys.saves, keys.lock, keys.dataIndex('s1')];
  t.same(control, ['dcp:ckpt:{run1/step-100}:state', 'dcp:ckpt:{run1/step-100}:meta', 'dcp:ckpt:{run1/step-100}:saves', 'dcp:ckpt:{run1/step-100}:lock', 'dcp:ckpt:{run1/step-100}:keys:s1']);
  t.ok(control.every((k) => hashTag(k) === 'run1/step-100'), 'one slot for every control key');
  const data = keys.dataKey('s1', 2, 7);
  t.equal(data, 'dcp:data:run1/step-100:s1:2:7');
  t.equal(hashTag(data), data, 'data keys hash as a whole, so they spread over slots');
  t.not(hashTag(keys.dataKey('s1', 0, 0)), hashTag(keys.dataKey('s1', 0, 1)));
  t.equal(new KeySpace('team-a').catalog(), 'team-a:catalog');
  t.equal(new KeySpace().fenceCounter(), 'dcp:fence');
});

t.test('every valid id yields keys with exactly one, balanced hash tag; invalid ids never yield keys', async (t) => {
  const space = new KeySpace();
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (id) => {
      const problem = checkpointIdProblem(id);
      if (problem !== undefined) {
        let code: unknown;
        try {
          space.checkpoint(id);
        } catch (err) {
          code = (err as { code?: unknown }).code;
        }
        if (code !== 'INVALID_CHECKPOINT_ID') throw new Error(`invalid id ${JSON.stringify(id)} was not rejected`);
        return;
      }
      const state = space.checkpoint(id).state;
      if (hashTag(state) !== id) throw new Error(`tag of ${state} is not the id`);
      if ((state.match(/[{}]/g) ?? []).length !== 2) throw new Error(`unbalanced braces in ${state}`);
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 arbitrary strings: valid ids tag correctly, invalid ones are rejected');
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9._:-]{1,12}(\/[A-Za-z0-9_:-]{1,12}){0,3}$/), (id) => {
      if (id.includes('..') || id.split('/').some((s) => s === '.')) return;
      if (checkpointIdProblem(id) !== undefined) throw new Error(`rejected a well-formed id ${id}`);
    }),
  );
  t.pass('well-formed ids are accepted');
});

t.test('id rules name what is wrong', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['', /1-512 characters/],
    ['a'.repeat(513), /1-512 characters/],
    ['a b', /only letters/],
    ['a*', /only letters/],
    ['{x}', /only letters/],
    ['a?b', /only letters/],
    ['/a', /start or end/],
    ['a/', /start or end/],
    ['a//b', /empty path segments/],
    ['a/../b', /"\." or "\.\." path segments/],
    ['a..b', /"\.\."/],
    [42, /string/],
  ];
  for (const [id, rule] of cases) t.match(checkpointIdProblem(id), rule, JSON.stringify(id));
  t.equal(checkpointIdProblem('a'.repeat(512)), undefined, '512 characters is fine');
  t.equal(checkpointIdProblem('run-1/step_100/v1.2:x'), undefined);
  t.throws(() => new KeySpace('bad prefix'), { code: 'INVALID_CHECKPOINT_ID' });
  t.throws(() => new KeySpace('{x}'), { code: 'INVALID_CHECKPOINT_ID' });
});

t.test('redis:// ids: parsed into connection and namespace; accepted by validateCheckpointId', async (t) => {
  t.same(parseCheckpointId('redis://h:6379/0/run1/step-100'), { name: 'run1/step-100', url: 'redis://h:6379/0' });
  t.same(parseCheckpointId('rediss://user:pw@h:6380/3/x'), { name: 'x', url: 'rediss://user:pw@h:6380/3' });
  t.same(parseCheckpointId('run1'), { name: 'run1' });
  t.throws(() => parseCheckpointId('redis://h:6379/run1'), { code: 'INVALID_CHECKPOINT_ID' }, 'the db number is required');
  t.throws(() => parseCheckpointId('redis://h:6379/0/a b'), { code: 'INVALID_CHECKPOINT_ID' });
  for (const Storage of [RedisStorageWriter, RedisStorageReader]) {
    t.ok(Storage.validateCheckpointId('redis://h:6379/0/run1/step-100'));
    t.ok(Storage.validateCheckpointId('run1/step-100'));
    t.notOk(Storage.validateCheckpointId('file:///tmp/x'));
    t.notOk(Storage.validateCheckpointId('a b'));
  }
  t.ok(isRedisCheckpointId('rediss://h:1/0/x'));
});

t.test('reset validates the id before anything touches Redis', async (t) => {
  // No client at all: a valid id must not connect during reset, an invalid one must throw.
  const writer = new RedisStorageWriter({ redis: 'redis://127.0.0.1:1' });
  t.throws(() => writer.reset('bad id'), { code: 'INVALID_CHECKPOINT_ID' });
  writer.reset('good/id');
  t.same(Object.keys(writer.storageMeta()).sort(), ['checkpointId', 'saveId']);
  t.equal(writer.storageMeta().checkpointId, 'good/id');
  const first = writer.storageMeta().saveId;
  writer.reset('good/id');
  t.not(writer.storageMeta().saveId, first, 'each reset is a new save');
  await writer.close();
  const reader = new RedisStorageReader({ redis: 'redis://127.0.0.1:1' });
  t.throws(() => reader.reset('x*'), { code: 'INVALID_CHECKPOINT_ID' });
  await reader.close();
});

t.test('process group keys: one hash tag per group, every run key carries the run nonce', async (t) => {
  const keys = new KeySpace('p').processGroup('job/7');
  const all = [keys.claim, keys.join('n1'), keys.joined('n1'), keys.admit('n1', 2), keys.inbox('n1', 5, 1), keys.shared('n1', 5, 0)];
  t.same(all, ['p:pg:{job/7}:claim', 'p:pg:{job/7}:n1:join', 'p:pg:{job/7}:n1:joined', 'p:pg:{job/7}:n1:admit:2', 'p:pg:{job/7}:n1:5:1', 'p:pg:{job/7}:n1:5:shared:0']);
  t.ok(all.every((k) => hashTag(k) === 'job/7'), 'one slot per group');
  t.throws(() => new KeySpace().processGroup('a}b'), { code: 'INVALID_GROUP_ID' });
  t.throws(() => new KeySpace().processGroup(''), { code: 'INVALID_GROUP_ID' });
});
