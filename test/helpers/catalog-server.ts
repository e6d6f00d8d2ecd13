/** A private redis-server, a client and a CheckpointCatalog on it, all closed when the test file ends. */
import t from 'tap';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisServer } from './redis-server.js';

export async function serverWithCatalog(): Promise<{ server: RedisServer; redis: ReturnType<RedisServer['client']>; catalog: CheckpointCatalog }> {
  const server = await RedisServer.start();
  const redis = server.client();
  const catalog = new CheckpointCatalog({ redis });
  t.teardown(async () => {
    await catalog.close();
    await server.stop();
  });
  return { server, redis, catalog };
}
