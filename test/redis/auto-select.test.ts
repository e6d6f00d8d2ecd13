import t from 'tap';
import { load, save, Tensor } from '../../src/index.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
t.teardown(() => server.stop());

t.test('save/load pick the Redis backend from a redis:// checkpoint id, as DCP auto-selection does', async (t) => {
  const id = `${server.url}/0/auto/step-100`;
  await save({ w: new Tensor('int16', [3], Int16Array.from([1, -2, 3])), step: 100 }, { checkpointId: id });
  const sd = { w: new Tensor('int16', [3]), step: 0 };
  await load(sd, { checkpointId: id });
  t.same(Array.from(sd.w.data), [1, -2, 3]);
  t.equal(sd.step, 100);
  t.equal(await server.client().exists('dcp:ckpt:{auto/step-100}:meta'), 1, 'the namespace is the path after the db');
  await t.rejects(save({}, { checkpointId: 'file:///tmp/x' }), { code: 'NO_STORAGE' });
});
