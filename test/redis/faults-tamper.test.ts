/** Storage data in Redis edited behind the library's back: clear errors, never a crash or a huge allocation. */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { CheckpointError } from '../../src/core/errors.js';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { assertStoreAgrees, committed, damaged } from '../helpers/invariants.js';

const { redis, catalog } = await serverWithCatalog();

const metaKey = (id: string) => `dcp:ckpt:{${id}}:meta`;
// A bystander: tampering with other checkpoints must leave it whole.
const bystander = { w: new Tensor('float32', [4096], Float32Array.from({ length: 4096 }, (_, i) => i / 7)), note: { step: 12 } };
await save(bystander, { checkpointId: 'tamper-bystander', storageWriter: new RedisStorageWriter({ redis }) });
type Json = Record<string, unknown>;

const tamperings: Array<[string, (sd: Json) => void]> = [
  ['unknown format', (sd) => (sd.format = 'other/9')],
  ['bad save id', (sd) => (sd.saveId = '../x')],
  ['items not an object', (sd) => (sd.items = [1, 2])],
  ['part with a huge offset', (sd) => ((Object.values(sd.items as Json)[0] as { p: number[][] }).p[0]![2] = 2 ** 40)],
  ['checksum out of range', (sd) => ((Object.values(sd.items as Json)[0] as { p: number[][] }).p[0]![4] = -1)],
  ['parts disagree with the size', (sd) => ((Object.values(sd.items as Json)[0] as { n: number }).n = 2 ** 50)],
  ['location missing', (sd) => (sd.items = {})],
];

for (const [what, tamper] of tamperings) {
  t.test(`tampered storage data (${what}): load, get and validate fail clearly`, async (t) => {
    const id = `tamper/${what.replace(/\W+/g, '-')}`;
    const saved = { w: new Tensor('float32', [256], new Float32Array(256).fill(1)) };
    await save(saved, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
    const metadata = JSON.parse((await redis.get(metaKey(id)))!) as Json;
    const storageKey = 'storageData' in metadata ? 'storageData' : 'storage_data';
    tamper(metadata[storageKey] as Json);
    await redis.set(metaKey(id), JSON.stringify(metadata));
    const err = await load({ w: new Tensor('float32', [256]) }, { checkpointId: id, storageReader: new RedisStorageReader({ redis }) }).catch((e: unknown) => e);
    t.ok(err instanceof CheckpointError, 'load fails');
    const cause = (err as CheckpointError).failures.get(0) as Error & { code?: string };
    t.ok(['METADATA_INVALID', 'DATA_MISSING'].includes(cause.code ?? ''), `code ${cause.code}: ${cause.message}`);
    const report = await catalog.validate(id);
    t.equal(report.ok, false);
    t.ok(report.problems.every((p) => p.kind === 'metadata_invalid'), report.problems.map((p) => p.message).join('; '));
    // The tampered checkpoint stays listed committed and keeps its data indexed; the bystander is whole.
    await assertStoreAgrees(t, { redis, expect: { [id]: damaged(saved, 'metadata_invalid'), 'tamper-bystander': committed(bystander) }, exhaustive: false });
  });
}

t.test('the bystander checkpoint is untouched by all of the above; the tampered ones are all that is there besides', async (t) => {
  const expect = Object.fromEntries(tamperings.map(([what]) => [`tamper/${what.replace(/\W+/g, '-')}`, damaged({ w: new Tensor('float32', [256]) }, 'metadata_invalid')]));
  await assertStoreAgrees(t, { redis, expect: { ...expect, 'tamper-bystander': committed(bystander) } });
});
