import t from 'tap';
import { RedisServer } from './helpers/redis-server.js';

t.test('starts, answers and stops a private redis-server', async (t) => {
  const server = await RedisServer.start();
  const client = server.client();
  t.equal(await client.set('k', 'v'), 'OK');
  t.equal(await client.get('k'), 'v');
  const pid = server.pid!;
  await server.stop();
  t.throws(() => process.kill(pid, 0), 'process is gone');
});
