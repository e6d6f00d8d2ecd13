/**
 * Loads verify each part's checksum (CRC32C or XXH64) as the reply's bytes arrive (StreamedCrcs fed by the bulk
 * connection): the streamed checksum equals the checksum of the bytes whatever the chunking,
 * and a flipped byte anywhere still fails the load with CHECKSUM_MISMATCH without applying
 * the damaged part.
 */
import t from 'tap';
import fc from 'fast-check';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { CheckpointError } from '../../src/core/errors.js';
import { Tensor } from '../../src/core/tensor.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import type { StoredPart } from '../../src/redis/layout.js';
import { checksumOf, StreamedCrcs } from '../../src/redis/verify.js';
import { RedisServer } from '../helpers/redis-server.js';

for (const kind of ['crc32c', 'xxh64'] as const) {
  t.test(`streamed ${kind} = ${kind} of the bytes, for any chunking, gaps and repeated parts`, async () => {
    const fetchStart = 1000;
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 4000 }),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 40 }),
        (bytes, cuts, chunks) => {
          // Non-overlapping parts with gaps, one of them listed twice (two read items needing one part).
          const bounds = [...new Set(cuts.flat().map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const parts: StoredPart[] = [];
          for (let i = 0; i + 1 < bounds.length; i += 2) {
            if (bounds[i + 1]! > bounds[i]!) parts.push({ key: 'k', offset: fetchStart + bounds[i]!, length: bounds[i + 1]! - bounds[i]!, crc: 0, checksum: kind });
          }
          if (parts.length > 0) parts.push(parts[0]!);
          const crcs = new StreamedCrcs(parts, fetchStart);
          let pos = 0;
          for (let c = 0; pos < bytes.length; c++) {
            const n = Math.min(chunks[c % chunks.length]!, bytes.length - pos);
            crcs.feed(bytes.subarray(pos, pos + n));
            pos += n;
          }
          // Asked twice (a part two read items need): the same answer.
          return parts.every((p) => crcs.crcOf(p) === checksumOf(kind, bytes.subarray(p.offset - fetchStart, p.offset - fetchStart + p.length)) && crcs.crcOf(p) === crcs.crcOf(p));
        },
      ),
      { numRuns: 300 },
    );
  });
}

t.test('pieces are left to their BLAKE3 check', async (t) => {
  const pieces = new StreamedCrcs([{ key: 'k', offset: 0, length: 3, piece: 'x' }], 0);
  pieces.feed(Uint8Array.from([1, 2, 3]));
  t.equal(pieces.crcOf({ key: 'k', offset: 0, length: 3, piece: 'x' }), undefined);
});

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

async function failure(sd: StateDict, id: string, bulkTransport: boolean, readIntoTensors = false): Promise<{ code?: string; message: string } | undefined> {
  const err = await load(sd, { checkpointId: id, storageReader: new RedisStorageReader({ redis, bulkTransport, readIntoTensors }) }).then(() => undefined, (e: unknown) => e as CheckpointError);
  const cause = err?.failures.get(0) as (Error & { code?: string }) | undefined;
  return cause && { code: cause.code, message: cause.message };
}

t.test('a 4 MiB part read in many socket reads: a flipped first or last byte fails the load', async (t) => {
  const n = (4 * 1024 * 1024 - 64) / 4;
  const source = Int32Array.from({ length: n }, (_, i) => i ^ 0x5a5a);
  await save({ w: new Tensor('int32', [n], source) }, { checkpointId: 'sv/big', storageWriter: new RedisStorageWriter({ redis, segmentBytes: n * 4 }) });
  const [key] = await redis.keys('dcp:data:sv/big:*');
  const original = (await redis.getBuffer(key!))!;
  t.equal(original.byteLength, n * 4, 'one segment holding the whole tensor');
  for (const at of [0, n * 4 - 1]) {
    await redis.setrange(key!, at, Buffer.from([original[at]! ^ 1]));
    for (const [bulkTransport, readIntoTensors] of [[true, false], [true, true], [false, false]] as const) {
      const r = await failure({ w: new Tensor('int32', [n]) }, 'sv/big', bulkTransport, readIntoTensors);
      t.equal(r?.code, 'CHECKSUM_MISMATCH', `byte ${at} flipped (bulk ${bulkTransport}, into the tensor ${readIntoTensors})`);
      t.match(r?.message ?? '', key!);
    }
    await redis.set(key!, original);
  }
  for (const readIntoTensors of [false, true]) {
    const dest = new Tensor('int32', [n]);
    t.equal(await failure({ w: dest }, 'sv/big', true, readIntoTensors), undefined, `restored, it loads (into the tensor ${readIntoTensors})`);
    t.ok(Buffer.from(dest.data.buffer).equals(Buffer.from(source.buffer)), 'bit for bit');
  }
});

t.test('small items fetched together: the damaged one fails the load and is never applied', async (t) => {
  const count = 300;
  const sd: StateDict = {};
  for (let i = 0; i < count; i++) sd[`p${i}`] = new Tensor('int32', [64], new Int32Array(64).fill(i));
  await save(sd, { checkpointId: 'sv/small', storageWriter: new RedisStorageWriter({ redis }) });
  const key = (await redis.keys('dcp:data:sv/small:*')).find((k) => k.endsWith(':0:0'));
  const victim = 137;
  // Items are written back to back in state dict order: item 137 starts at 137 × 256 bytes of rank 0's first segment.
  await redis.setrange(key!, victim * 256 + 10, 'X');
  for (const bulkTransport of [true, false]) {
    const back: StateDict = {};
    for (let i = 0; i < count; i++) back[`p${i}`] = new Tensor('int32', [64], new Int32Array(64).fill(-1));
    const r = await failure(back, 'sv/small', bulkTransport);
    t.equal(r?.code, 'CHECKSUM_MISMATCH', `bulk ${bulkTransport}`);
    t.match(r?.message ?? '', `"p${victim}"`, 'names the damaged item');
    t.ok((back[`p${victim}`] as Tensor).data.every((v) => v === -1), 'the damaged item kept its previous contents');
  }
});
