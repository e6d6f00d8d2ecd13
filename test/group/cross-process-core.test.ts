/**
 * The DCP core (save/load drivers, planners, DistWrapper) across real OS processes
 * through RedisProcessGroup, with the test file-system storage instead of the Redis
 * backend, so a failure here points at the core or the group, not the storage.
 */
import t from 'tap';
import { RedisServer } from '../helpers/redis-server.js';
import { startFixture, type ChildResult } from '../helpers/child.js';
import { assertSameFailure } from '../helpers/rank-results.js';

const server = await RedisServer.start();
t.teardown(() => server.stop());

let groupSeq = 0;
const results = async (children: ReturnType<typeof runFsRanks>): Promise<ChildResult[]> => Promise.all(children.map((c) => c.done));

/** Ranks of the core with the test file-system storage (no Redis storage backend). */
function runFsRanks(mode: 'save' | 'load', dir: string, world: number, envFor: (rank: number) => NodeJS.ProcessEnv = () => ({}), timeoutMs = 8000) {
  const groupId = `fs-${process.pid}-${groupSeq++}`;
  return Array.from({ length: world }, (_, rank) => startFixture('test/fixtures/pg-fs-rank.ts', [mode, server.url, dir, String(rank), String(world), groupId, String(timeoutMs)], envFor(rank)));
}

t.test('core only (file-system storage): 3 processes save a mixed state dict, 2 load it resharded; failures reach every rank', async (t) => {
  const dir = t.testdir();
  for (const r of await results(runFsRanks('save', dir, 3))) t.same(r.json, { ok: true, rank: r.json?.rank }, r.stderr);
  const loaded = await results(runFsRanks('load', dir, 2));
  for (const r of loaded) {
    t.match(r.json, { ok: true, wrong: 0, rowsLoaded: 30 }, r.stderr);
    t.same(r.json, {
      ...r.json,
      ids: ['1', '-2', String(2n ** 40n)],
      flags: [1, 0, 1],
      blob: [7, 8, 9, 250],
      config: { lr: 0.5, names: ['a', 'b'], nested: { ok: true } },
      step: 3,
      m: [0.25, -1],
    });
  }
  const failing = await results(runFsRanks('save', `${dir}-failing`, 3, () => ({ FAIL_AT: '2:writeData' })));
  assertSameFailure(t, failing, 'write', 2, 'INJECTED', /^injected failure in writeData on rank 2$/);
  const failedRead = await results(runFsRanks('load', dir, 3, () => ({ FAIL_AT: '0:readData' })));
  assertSameFailure(t, failedRead, 'read', 0, 'INJECTED', /^injected failure in readData on rank 0$/);
});

