/** Operator surfaces of issue 12: POST /gc and GET /usage in the admin API, `redis-dcp gc | prune | usage`. */
import { execFile } from 'node:child_process';
import t from 'tap';
import { Tensor } from '../../src/core/tensor.js';
import { CheckpointManager } from '../../src/manager/manager.js';
import { CheckpointStore } from '../../src/redis/checkpoint-store.js';
import { KeySpace } from '../../src/redis/keys.js';
import { buildApp } from '../../src/server/app.js';
import { nodeArgs, repoRoot } from '../helpers/child.js';
import { assertStoreAgrees, committed, incomplete } from '../helpers/invariants.js';
import { RedisServer } from '../helpers/redis-server.js';

const server = await RedisServer.start();
const redis = server.client();
const token = 'x'.repeat(32);
const app = await buildApp({ redis, adminToken: token });
t.teardown(async () => {
  await app.close();
  await server.stop();
});

const sd = (v: number) => ({ w: new Tensor('uint8', [2000], new Uint8Array(2000).fill(v)) });

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeArgs('src/cli/main.ts'), ...args], { cwd: repoRoot, env: { ...process.env, REDIS_URL: server.url, NO_COLOR: '1' }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

async function crashedSave(id: string): Promise<void> {
  const store = new CheckpointStore(redis, new KeySpace(), id);
  await store.beginSave(await store.nextToken(), 'crashed', 1, 1, true, 1234);
}

t.test('POST /gc needs the admin token, collects old incomplete checkpoints, dryRun reports only', async (t) => {
  const manager = new CheckpointManager({ redis, run: 'ops' });
  for (const step of [1, 2, 3]) await manager.save(step, sd(step), { metrics: { loss: step / 10 } });
  await manager.close();
  await crashedSave('ops/step-9');
  await crashedSave('elsewhere/x');
  await new Promise((r) => setTimeout(r, 20));
  t.equal((await app.inject({ method: 'POST', url: '/gc', payload: {} })).statusCode, 401);
  const auth = { authorization: `Bearer ${token}` };
  const young = await app.inject({ method: 'POST', url: '/gc', headers: auth, payload: {} });
  t.same({ ...young.json(), kept: young.json().kept.sort() }, { deleted: [], kept: ['elsewhere/x', 'ops/step-9'] }, 'default threshold (10 min): young ones kept');
  const dry = await app.inject({ method: 'POST', url: '/gc', headers: auth, payload: { prefix: 'ops/', incompleteOlderThanMs: 0, dryRun: true } });
  t.same(dry.json(), { deleted: ['ops/step-9'], kept: [] });
  t.equal(await redis.exists('dcp:ckpt:{ops/step-9}:state'), 1, 'dry run deleted nothing');
  const real = await app.inject({ method: 'POST', url: '/gc', headers: auth, payload: { prefix: 'ops/', incompleteOlderThanMs: 0 } });
  t.equal(real.statusCode, 200);
  t.same(real.json(), { deleted: ['ops/step-9'], kept: [] });
  t.equal((await app.inject({ method: 'POST', url: '/gc', headers: auth, payload: { incompleteOlderThanMs: -1 } })).statusCode, 400);
  const list = (await app.inject({ url: '/checkpoints', query: { prefix: 'ops/' } })).json() as { items: Array<{ id: string; step?: number; metrics?: Record<string, number> }> };
  t.same(list.items.map((i) => [i.id, i.step, i.metrics]).sort(), [['ops/step-1', 1, { loss: 0.1 }], ['ops/step-2', 2, { loss: 0.2 }], ['ops/step-3', 3, { loss: 0.3 }]]);

  const usage = await app.inject('/usage');
  t.equal(usage.statusCode, 200);
  t.match(usage.json(), { redis: { maxMemory: null }, committed: { checkpoints: 3, bytes: 6000 }, incomplete: { checkpoints: 1, bytes: 1234 }, runs: [{ prefix: 'ops/', checkpoints: 3, committedBytes: 6000 }] });
  await assertStoreAgrees(t, { redis, expect: { 'ops/step-1': committed(sd(1)), 'ops/step-2': committed(sd(2)), 'ops/step-3': committed(sd(3)), 'elsewhere/x': incomplete, 'ops/step-9': { state: 'absent' } } });
});

t.test('CLI: usage, prune --keep-last (dry run, then for real), gc --older-than', async (t) => {
  // What changes nothing at once (a CLI process that connects spends about half a second of CPU starting), then prune and gc (other prefixes) at once.
  const [usage, usageText, dry, noRule, badDuration] = await Promise.all([
    cli('usage', '--json'),
    cli('usage'),
    cli('prune', 'ops', '--keep-last', '1', '--dry-run', '--json'),
    cli('prune', 'ops'),
    cli('gc', '--older-than', 'soon'),
  ]);
  t.equal(usage.code, 0, usage.stderr);
  t.match(JSON.parse(usage.stdout), { committed: { checkpoints: 3 } });
  t.match(usageText.stdout, /committed: .* in 3 checkpoint/);
  t.same(JSON.parse(dry.stdout), { deleted: ['ops/step-1', 'ops/step-2'], kept: ['ops/step-3'], busy: [], dryRun: true });
  t.equal(noRule.code, 2, 'prune without a rule is a usage error');
  t.equal(badDuration.code, 2, 'a bad duration is a usage error');
  const [real, gc] = await Promise.all([cli('prune', 'ops', '--keep-last', '1'), cli('gc', 'elsewhere/', '--older-than', '0s', '--json')]);
  t.equal(real.code, 0, real.stderr);
  t.match(real.stdout, /deleted 2, kept 1/);
  t.same(JSON.parse(gc.stdout), { deleted: ['elsewhere/x'], kept: [], dryRun: false });
  await assertStoreAgrees(t, { redis, expect: { 'ops/step-3': committed(sd(3)), 'elsewhere/x': { state: 'absent' } } });
});
