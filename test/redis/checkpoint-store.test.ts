import t from 'tap';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

t.test('fenced scripts refuse stale tokens and expired leases', async (t) => {
  const store = new CheckpointStore(redis, new KeySpace(), 'fence/unit');
  const old = await store.nextToken();
  const newer = await store.nextToken();
  t.ok(Number(newer) > Number(old), 'tokens increase');
  await store.beginSave(newer, 'saveB', 10_000, 1, true);
  await t.rejects(store.beginSave(old, 'saveA', 10_000, 1, true), { code: 'FENCED' }, 'an older token cannot take over');
  await t.rejects(store.commit(old, 'saveB', '{}', { worldSize: 1, totalBytes: 0, itemCount: 0 }), { code: 'FENCED' });
  await t.rejects(store.extendLease(old, 1000), { code: 'FENCED' });
  await t.rejects(store.commit(newer, 'other', '{}', { worldSize: 1, totalBytes: 0, itemCount: 0 }), { code: 'FENCED' }, 'only the pending save commits');
  await store.extendLease(newer, 1);
  await new Promise((r) => setTimeout(r, 20));
  await t.rejects(store.commit(newer, 'saveB', '{}', { worldSize: 1, totalBytes: 0, itemCount: 0 }), /lease expired/);
  t.equal((await store.state())!.status, 'incomplete', 'an expired lease without commit reads as incomplete');
  await store.extendLease(newer, 10_000);
  t.equal((await store.state())!.status, 'writing');
  const outcome = await store.commit(newer, 'saveB', '{"x":1}', { worldSize: 1, totalBytes: 5, itemCount: 1 });
  t.same(outcome, { garbage: [], heldByPins: 0 });
  t.equal((await store.state())!.status, 'committed');
  await t.rejects(store.beginSave(await store.nextToken(), 'saveC', 10_000, 1, false), { code: 'CHECKPOINT_EXISTS' });
  const deleter = await store.nextToken();
  await store.beginDelete(deleter);
  t.equal((await store.state())!.status, 'incomplete', 'a checkpoint being deleted is no longer committed');
  await t.rejects(store.finishDelete(newer, []), { code: 'FENCED' });
  await store.finishDelete(deleter, ['saveB']);
  t.equal(await store.state(), undefined);
});
