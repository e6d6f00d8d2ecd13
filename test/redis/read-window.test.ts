/**
 * The reader's byte window (ByteWindow, option maxInFlightBytes): never more than the limit of
 * reply bytes asked for at once (a larger fetch alone), first come first served, and a load
 * through any window is bit for bit.
 */
import t from 'tap';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { ByteWindow } from '../../src/redis/bounded.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { RedisServer } from '../helpers/redis-server.js';

t.test('ByteWindow holds at most its limit (one larger request alone), in arrival order', async (t) => {
  const window = new ByteWindow(10);
  let held = 0;
  let most = 0;
  const order: number[] = [];
  const sizes = [4, 4, 4, 12, 1, 6, 5, 10, 3];
  await Promise.all(
    sizes.map((bytes, i) =>
      window.run(bytes, async () => {
        order.push(i);
        held += bytes;
        most = Math.max(most, held);
        if (bytes > 10) t.equal(held, bytes, 'a request over the limit runs alone');
        await new Promise((resolve) => setTimeout(resolve, 1 + (i % 3)));
        held -= bytes;
      }),
    ),
  );
  t.ok(most <= 12, `at most the limit, or one larger request (${most})`);
  t.same(order, sizes.map((_, i) => i), 'first come, first served');
  await t.rejects(window.run(1, async () => Promise.reject(new Error('boom'))), /boom/);
  t.equal(await window.run(10, async () => 'free again'), 'free again', 'a failed task gives its bytes back');
});

t.test('maxInFlightBytes: validated, and loads through a window smaller than a segment are bit for bit', async (t) => {
  t.throws(() => new RedisStorageReader({ maxInFlightBytes: 0 }), { code: 'DCP_VALUE_ERROR', message: /^maxInFlightBytes must be/ });
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const redis = server.client();
  const n = 200_000;
  const source = Int32Array.from({ length: n }, (_, i) => i * 3 + 1);
  await save({ w: new Tensor('int32', [n], source), b: new Tensor('int32', [5], Int32Array.from([1, 2, 3, 4, 5])) }, { checkpointId: 'win/a', storageWriter: new RedisStorageWriter({ redis, segmentBytes: 64 * 1024 }) });
  for (const maxInFlightBytes of [1, 100_000, 8 << 20]) {
    for (const bulkTransport of [true, false]) {
      const w = new Tensor('int32', [n]);
      const b = new Tensor('int32', [5]);
      await load({ w, b }, { checkpointId: 'win/a', storageReader: new RedisStorageReader({ redis, maxInFlightBytes, bulkTransport }) });
      t.ok(Buffer.from(w.data.buffer).equals(Buffer.from(source.buffer)) && b.data[4] === 5, `window ${maxInFlightBytes}, bulk ${bulkTransport}`);
    }
  }
});
