/**
 * Segment parts are checksummed with XXH64's low 32 bits (format redis-dcp/4) by default, or
 * with CRC32C (redis-dcp/1, what earlier versions wrote and read) when asked: both formats load,
 * validate and reject a flipped byte (the streamed checksums: streamed-verify.test.ts); ranks that
 * disagree on the checksum fail the save before its commit.
 */
import t from 'tap';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { CheckpointError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import { createLocalGroups } from '../../src/group/local-group.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { STORAGE_FORMAT, XXH64_STORAGE_FORMAT } from '../../src/redis/layout.js';
import { checksumOf, crcOf, xxh64Low32 } from '../../src/redis/verify.js';
import { RedisServer } from '../helpers/redis-server.js';

t.test('checksumOf: known values of both kinds', async (t) => {
  const bytes = new TextEncoder().encode('123456789');
  t.equal(crcOf(bytes), 0xe3069283, 'CRC32C check value');
  t.equal(checksumOf('crc32c', bytes), 0xe3069283);
  // XXH64 reference vectors (seed 0): "" 0xef46db3751d8e999, "a" 0xd24ec4f1a98c6e5b, "abc" 0x44bc2cf5ad770999; low 32 bits:
  t.equal(xxh64Low32(new Uint8Array(0)), 0x51d8e999);
  t.equal(xxh64Low32(new TextEncoder().encode('a')), 0xa98c6e5b);
  t.equal(checksumOf('xxh64', new TextEncoder().encode('abc')), 0xad770999);
});

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());
const catalog = new CheckpointCatalog({ redis });
t.teardown(() => catalog.close());

function stateDict(fill: number): { w: Tensor<'int32'>; b: Tensor<'float32'> } {
  return { w: new Tensor('int32', [70_000], Int32Array.from({ length: 70_000 }, (_, i) => i * 7 + fill)), b: new Tensor('float32', [300], new Float32Array(300).fill(fill)) };
}

async function storedFormat(id: string): Promise<string> {
  const details = await catalog.get(id);
  return (details.metadata as { storageData?: { format?: string } }).storageData?.format ?? '';
}

async function loadCode(id: string, bulkTransport: boolean, readIntoTensors: boolean): Promise<string | undefined> {
  const back = stateDict(-1);
  const err = await load(back, { checkpointId: id, storageReader: new RedisStorageReader({ redis, bulkTransport, readIntoTensors }) }).then(() => undefined, (e: unknown) => e as CheckpointError);
  if (err) return (err.failures.get(0) as { code?: string } | undefined)?.code ?? 'UNKNOWN';
  const want = stateDict(3);
  return Buffer.from(back.w.data.buffer).equals(Buffer.from(want.w.data.buffer)) && Buffer.from(back.b.data.buffer).equals(Buffer.from(want.b.data.buffer)) ? undefined : 'WRONG_BYTES';
}

for (const [checksum, format] of [[undefined, XXH64_STORAGE_FORMAT], ['xxh64', XXH64_STORAGE_FORMAT], ['crc32c', STORAGE_FORMAT]] as const) {
  t.test(`checksum ${checksum ?? '(default)'}: format ${format}, loads, validates, rejects a flipped byte`, async (t) => {
    const id = `ck/${checksum ?? 'default'}`;
    await save(stateDict(3), { checkpointId: id, storageWriter: new RedisStorageWriter({ redis, segmentBytes: 64 * 1024 - 64, ...(checksum ? { checksum } : {}) }) });
    t.equal(await storedFormat(id), format);
    for (const [bulk, into] of [[true, false], [true, true], [false, false]] as const) t.equal(await loadCode(id, bulk, into), undefined, `loads bit for bit (bulk ${bulk}, into the tensor ${into})`);
    t.same(await catalog.validate(id, { deep: true }), { ok: true, problems: [] });
    const key = (await redis.keys(`dcp:data:${id}:*`)).sort()[1]!;
    const original = (await redis.getBuffer(key))!;
    await redis.setrange(key, 1000, Buffer.from([original[1000]! ^ 0x10]));
    for (const [bulk, into] of [[true, false], [true, true], [false, false]] as const) t.equal(await loadCode(id, bulk, into), 'CHECKSUM_MISMATCH', `a flipped byte fails the load (bulk ${bulk}, into the tensor ${into})`);
    const report = await catalog.validate(id, { deep: true });
    t.equal(report.ok, false);
    t.match(report.problems[0], { kind: 'checksum_mismatch', message: checksum === 'crc32c' ? /^CRC32C of bytes/ : /^XXH64 \(low 32 bits\) of bytes/ });
    await redis.set(key, original);
    t.equal(await loadCode(id, true, false), undefined, 'restored, it loads again');
  });
}

t.test('a bad checksum option is a typed error before anything is written', async (t) => {
  const before = await redis.dbsize();
  t.throws(() => new RedisStorageWriter({ redis, checksum: 'md5' as never }), { code: 'DCP_VALUE_ERROR', message: /checksum must be 'xxh64' or 'crc32c'/ });
  t.equal(await redis.dbsize(), before);
});

t.test('ranks with different checksum options: the save fails before the commit, nothing is committed', async (t) => {
  const group = createLocalGroups(2);
  const results = await Promise.allSettled(
    [0, 1].map((rank) =>
      save({ [`w${rank}`]: new Tensor('int32', [4], Int32Array.from([rank, 1, 2, 3])) }, { checkpointId: 'ck/mixed', processGroup: group[rank]!, storageWriter: new RedisStorageWriter({ redis, checksum: rank === 0 ? 'xxh64' : 'crc32c' }) }),
    ),
  );
  t.ok(results.every((r) => r.status === 'rejected'), 'both ranks see the failure');
  t.match(String((results[0] as PromiseRejectedResult).reason), /different checksums/);
  t.equal((await catalog.list({ prefix: 'ck/mixed' })).items.filter((i) => i.state === 'committed').length, 0, 'nothing committed');
});
