/**
 * asyncSave from the built package (dist/, plain JavaScript, no tsx): the upload worker
 * entry resolves next to the compiled module and the save commits from the worker thread
 * (`npm test` builds first). See test/core/async-save.test.ts for the behaviour itself.
 */
import { execFile } from 'node:child_process';
import t from 'tap';
import { assertStoreAgrees, committed } from './helpers/invariants.js';
import { RedisServer } from './helpers/redis-server.js';
import { Tensor } from '../src/core/tensor.js';

const root = new URL('..', import.meta.url);

t.test('the built package uploads in its worker thread', async (t) => {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  const script = `
    import { asyncSave, RedisStorageWriter, Tensor } from 'redis-dcp';
    import { uploadTimesOf } from 'redis-dcp/internal';
    const w = new Tensor('int32', [1000], Int32Array.from({ length: 1000 }, (_, i) => i * 3));
    const writer = new RedisStorageWriter({ redis: ${JSON.stringify(server.url)} });
    const response = asyncSave({ w, step: 9 }, { checkpointId: 'dist/async', storageWriter: writer });
    await response.staged;
    w.data.fill(-1);
    await response.committed;
    const times = await uploadTimesOf(response);
    await writer.close();
    console.log(JSON.stringify({ inWorker: times !== undefined, module: import.meta.resolve('redis-dcp') }));`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: root, timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
  const result = JSON.parse(out.trim().split('\n').at(-1)!) as { inWorker: boolean; module: string };
  t.ok(result.module.endsWith('/dist/index.js'), 'ran from dist/');
  t.equal(result.inWorker, true, 'the upload ran in the worker thread');
  await assertStoreAgrees(t, { redis: server.client(), expect: { 'dist/async': committed({ w: new Tensor('int32', [1000], Int32Array.from({ length: 1000 }, (_, i) => i * 3)), step: 9 }) } });
});
