import t from 'tap';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisServer } from '../helpers/redis-server.js';
import { startFixture, type ChildResult } from '../helpers/child.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

let groupSeq = 0;
function runRanks(mode: 'save' | 'load', id: string, world: number, envFor: (rank: number) => NodeJS.ProcessEnv = () => ({}), timeoutMs = 8000) {
  const groupId = `g-${process.pid}-${groupSeq++}`;
  return Array.from({ length: world }, (_, rank) => startFixture('test/fixtures/rank.ts', [mode, server.url, id, String(rank), String(world), groupId, String(timeoutMs)], envFor(rank)));
}
const results = async (children: ReturnType<typeof runRanks>): Promise<ChildResult[]> => Promise.all(children.map((c) => c.done));

t.test('3 rank processes save, 2 load with resharding', async (t) => {
  const saved = await results(runRanks('save', 'xp/ok', 3));
  for (const r of saved) t.same(r.json, { ok: true, rank: r.json!.rank }, r.stderr);
  const loaded = await results(runRanks('load', 'xp/ok', 2));
  for (const r of loaded) t.match(r.json, { ok: true, seed: 1, wrong: 0 }, r.stderr);
});

const saveSteps: Array<[string, number, string]> = [
  ['setUp', 1, 'plan'],
  ['prepareLocalPlan', 2, 'plan'],
  ['prepareGlobalPlan', 0, 'plan'],
  ['writeData', 1, 'write'],
  ['finish', 0, 'write'],
];
for (const [step, rank, protocolStep] of saveSteps) {
  t.test(`save: ${step} failing on rank ${rank} fails every process the same way`, async (t) => {
    const id = `xp/fail-${step}`;
    const out = await results(runRanks('save', id, 3, () => ({ FAIL_AT: `${rank}:${step}` })));
    for (const r of out) {
      t.match(r.json, { ok: false, code: 'CHECKPOINT_FAILED', step: protocolStep }, `rank ${String(r.json?.rank)}: ${r.stderr}`);
      t.same(r.json!.failures, { [rank]: 'INJECTED' });
    }
    const state = await redis.hgetall(`dcp:ckpt:{${id}}:state`);
    t.notOk(state.committedSaveId, 'nothing committed');
    t.same(await redis.keys(`dcp:data:${id}:*`), [], 'partial data dropped');
  });
}

t.test('load: readData failing on rank 1 fails every process', async (t) => {
  await results(runRanks('save', 'xp/load-fail', 2));
  const out = await results(runRanks('load', 'xp/load-fail', 3, () => ({ FAIL_AT: '1:readData' })));
  for (const r of out) t.match(r.json, { ok: false, step: 'read', failures: { 1: 'INJECTED' } });
});

t.test('a rank SIGKILLed mid-write: others fail within the timeout; incomplete; delete cleans every key', async (t) => {
  const before = new Set(await redis.keys('*'));
  const id = 'xp/killed';
  const started = Date.now();
  const children = runRanks('save', id, 3, (rank) => (rank === 2 ? { PAUSE_AT: 'writeData', PAUSE_MS: '60000' } : {}), 2500);
  await children[2]!.waitFor('paused-at-writeData');
  children[2]!.process.kill('SIGKILL');
  const out = await results(children);
  t.equal(out[2]!.signal, 'SIGKILL');
  for (const r of out.slice(0, 2)) t.match(r.json, { ok: false, code: 'CHECKPOINT_FAILED' }, r.stderr);
  t.ok(Date.now() - started < 20_000, 'no hang');
  const catalog = new CheckpointCatalog({ redis });
  const listed = await catalog.list({ prefix: 'xp/killed' });
  t.same(listed.items.map((i) => [i.id, i.state]), [[id, 'incomplete']]);
  await catalog.delete(id);
  const left = (await redis.keys('*')).filter((k) => !before.has(k) && k !== 'dcp:fence' && !k.startsWith('dcp:pg:'));
  t.same(left, [], 'every key of the checkpoint removed');
  await catalog.close();
});
