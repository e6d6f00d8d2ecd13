import t from 'tap';
import { Redis, Cluster } from 'ioredis';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BulkConnections, BulkSocket } from '../../src/redis/bulk-socket.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
t.teardown(() => server.stop());
await server.client().config('SET', 'requirepass', 'sesame');
const redis = new Redis({ port: server.port, password: 'sesame', db: 3, disableClientInfo: true });
t.teardown(() => redis.disconnect());

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

t.test('SET from views and GETRANGE into a buffer, pipelined, with AUTH and SELECT', async (t) => {
  const bulk = (await BulkSocket.forClient(redis))!;
  t.ok(bulk, 'a standalone client gets a bulk connection');
  const big = bytes(5 * 1024 * 1024 + 3, 1);
  const pieces = [big.subarray(0, 1000), big.subarray(1000, 3_000_000), big.subarray(3_000_000)];
  const small = Array.from({ length: 200 }, (_, i) => bytes(i, i));
  await Promise.all([bulk.set('b:big', pieces), ...small.map((v, i) => bulk.set(`b:s${i}`, [v]))]);
  t.same(await redis.getBuffer('b:big'), Buffer.from(big), 'pieces land concatenated, in db 3');
  const dest = Buffer.alloc(big.byteLength);
  const outs = small.map((v) => Buffer.alloc(v.byteLength + 5));
  const [n, ...ns] = await Promise.all([bulk.getRangeInto('b:big', 0, big.byteLength - 1, dest), ...small.map((_, i) => bulk.getRangeInto(`b:s${i}`, 0, 10_000, outs[i]!))]);
  t.equal(n, big.byteLength);
  t.ok(dest.equals(Buffer.from(big)), 'a large reply arrives whole across many socket chunks');
  t.ok(small.every((v, i) => ns[i] === v.byteLength && outs[i]!.subarray(0, v.byteLength).equals(Buffer.from(v))), 'many small replies in order');
  const part = Buffer.alloc(10);
  t.equal(await bulk.getRangeInto('b:big', 100, 109, part), 10);
  t.ok(part.equals(Buffer.from(big.subarray(100, 110))));
  t.equal(await bulk.getRangeInto('b:missing', 0, 9, part), 0, 'a missing key reads as empty');
  await redis.hset('b:hash', 'f', 'v');
  await t.rejects(bulk.getRangeInto('b:hash', 0, 1, part), /WRONGTYPE/, 'error replies reject that request only');
  t.equal(await bulk.getRangeInto('b:big', 0, 0, part), 1, 'and the connection goes on');
  await t.rejects(bulk.getRangeInto('b:big', 0, 99, Buffer.alloc(5)), /more than/, 'a reply larger than the destination breaks the connection');
  await t.rejects(bulk.set('b:x', [part]), /more than/);
  bulk.close();
});

t.test('a client made from a URL (string port, db and password in the URL) gets a matching bulk connection', async (t) => {
  const fromUrl = new Redis(`redis://:sesame@127.0.0.1:${server.port}/5`, { disableClientInfo: true });
  const bulk = (await BulkSocket.forClient(fromUrl))!;
  await bulk.set('b:url', [Buffer.from('hello')]);
  t.equal(await fromUrl.get('b:url'), 'hello', 'written to db 5');
  t.equal(await redis.exists('b:url'), 0, 'not to db 3');
  bulk.close();
  fromUrl.disconnect();
});

t.test('a wrong password fails to open; Cluster clients get none', async (t) => {
  const wrong = new Redis({ port: server.port, password: 'nope', lazyConnect: true, disableClientInfo: true });
  await t.rejects(BulkSocket.forClient(wrong), /WRONGPASS|invalid/i);
  const cluster = new Cluster([{ host: '127.0.0.1', port: server.port }], { lazyConnect: true });
  t.equal(await BulkSocket.forClient(cluster), undefined);
});

t.test('pending requests fail when the server dies', async (t) => {
  const other = await RedisServer.start();
  const client = new Redis({ port: other.port, disableClientInfo: true });
  client.on('error', () => {});
  const bulk = (await BulkSocket.forClient(client))!;
  await bulk.set('k', [bytes(1 << 20, 2)]);
  const pending = bulk.getRangeInto('k', 0, (1 << 20) - 1, Buffer.alloc(1 << 20));
  other.pause();
  const killed = other.kill();
  await t.rejects(pending, /closed|ECONNRESET/);
  await killed;
  await t.rejects(bulk.set('k', [bytes(1, 1)]), /closed|ECONNRESET/, 'later requests fail at once');
  client.disconnect();
});

t.test('save/load round trip with and without the bulk connection agree', async (t) => {
  const sd = { w: new Tensor('uint8', [9_000_000], bytes(9_000_000, 5)), s: new Tensor('uint8', [77], bytes(77, 9)), note: 'x' };
  for (const bulkTransport of [true, false]) {
    const id = `bulk/${bulkTransport}`;
    await save(sd, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, bulkTransport }) });
    for (const readBulk of [true, false]) {
      const dest = { w: new Tensor('uint8', [9_000_000]), s: new Tensor('uint8', [77]), note: '' };
      await load(dest, { checkpointId: id, storageReader: new RedisStorageReader({ redis, bulkTransport: readBulk }) });
      t.ok(Buffer.from(dest.w.data).equals(Buffer.from(sd.w.data)) && Buffer.from(dest.s.data).equals(Buffer.from(sd.s.data)) && dest.note === 'x', `written ${bulkTransport ? 'bulk' : 'ioredis'}, read ${readBulk ? 'bulk' : 'ioredis'}`);
    }
  }
});

t.test('over a unix socket, several bulk connections: every size around the read buffer arrives intact, in order', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dcp-unix-'));
  const path = join(dir, 'redis.sock');
  const local = await RedisServer.start({ args: ['--unixsocket', path, '--unixsocketperm', '700'] });
  const client = new Redis({ path, disableClientInfo: true });
  t.teardown(async () => {
    client.disconnect();
    await local.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const conns = (await BulkConnections.open(client, 3))!;
  t.ok(conns, 'a unix-socket client gets bulk connections');
  // Sizes around the 64 KiB header buffer: replies that end inside it, fill it exactly, or continue straight into the destination.
  const sizes = [0, 1, 2, 65_533, 65_534, 65_535, 65_536, 65_537, 131_072, 1 << 20, (4 << 20) - 64, 7_777_777];
  const values = sizes.map((n, i) => bytes(n, i + 3));
  await Promise.all(values.map((v, i) => conns.set(`u:${i}`, [v.subarray(0, v.byteLength >> 1), v.subarray(v.byteLength >> 1)])));
  for (let round = 0; round < 2; round++) {
    const outs = values.map((v) => Buffer.alloc(v.byteLength + 1, 0xee));
    const got = await Promise.all(values.map((v, i) => conns.getRangeInto(`u:${i}`, 0, v.byteLength + 100, outs[i]!)));
    t.same(got, sizes, `round ${round}: every reply has its length`);
    t.ok(values.every((v, i) => outs[i]!.subarray(0, v.byteLength).equals(Buffer.from(v)) && outs[i]![v.byteLength] === 0xee), `round ${round}: every byte in place, nothing written past the value`);
  }
  conns.close();
  const sd = { w: new Tensor('uint8', [6_000_000], bytes(6_000_000, 11)), n: 3 };
  await save(sd, { checkpointId: 'unix/ckpt', storageWriter: new RedisStorageWriter({ redis: client, bulkConnections: 3 }) });
  const dest = { w: new Tensor('uint8', [6_000_000]), n: 0 };
  await load(dest, { checkpointId: 'unix/ckpt', storageReader: new RedisStorageReader({ redis: client, bulkConnections: 2 }) });
  t.ok(Buffer.from(dest.w.data).equals(Buffer.from(sd.w.data)) && dest.n === 3, 'save and load over unix-socket bulk connections');
});

t.test('BufferPool reuses buffers, the best fit first, and keeps the largest', async (t) => {
  const { BufferPool } = await import('../../src/redis/read-parts.js');
  const pool = new BufferPool(2);
  const big = pool.take(4096);
  const small = pool.take(16);
  pool.give(small);
  pool.give(big);
  t.equal(pool.take(10), small, 'smallest that fits');
  t.equal(pool.take(100), big);
  pool.give(Buffer.alloc(8));
  pool.give(Buffer.alloc(9));
  pool.give(big);
  t.equal(pool.take(4000), big, 'a larger buffer displaced a small one');
});
