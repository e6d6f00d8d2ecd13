/**
 * CheckpointCatalog.list on a standalone Redis reads a page in one round trip (list-page-1.lua:
 * TIME, ZRANGE and the state hashes in one read-only script call), seen through MONITOR; the
 * page is what the separate commands give (ids, states, summaries, cursors).
 */
import t from 'tap';
import { serverWithCatalog } from '../helpers/catalog-server.js';
import { save } from '../../src/core/save.js';
import { Tensor } from '../../src/core/tensor.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { KeySpace } from '../../src/redis/keys.js';

const { redis, catalog } = await serverWithCatalog();

t.test('the state key the script builds is the one keys.ts names', async (t) => {
  for (const prefix of ['dcp', 'a:b']) {
    const keys = new KeySpace(prefix);
    const [before, after] = keys.stateKeyAround();
    for (const id of ['run/step-1', 'x', 'a.b_c-d/e']) t.equal(before + id + after, keys.checkpoint(id).state);
  }
});

/** The commands clients sent while `fn` ran (commands run inside scripts are left out). */
async function clientCommands(fn: () => Promise<unknown>): Promise<string[][]> {
  const monitor = await redis.monitor(); // a connection of its own
  const seen: string[][] = [];
  let onMarker: () => void = () => {};
  const marker = new Promise<void>((resolve) => (onMarker = resolve));
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (args[0]?.toLowerCase() === 'echo' && args[1] === 'end-of-list') onMarker();
    else if (!source.startsWith('lua')) seen.push(args);
  });
  try {
    await fn();
    await redis.echo('end-of-list'); // MONITOR shows commands in order: this one comes after the list's
    await marker;
  } finally {
    monitor.disconnect();
  }
  return seen;
}

t.test('a 100-item page is one command, read only, and lists what is there', async (t) => {
  for (let i = 0; i < 120; i++) {
    const sd = { w: new Tensor('float32', [2], Float32Array.from([i, 0])), step: i };
    await save(sd, { checkpointId: `rt1/ck-${String(i).padStart(3, '0')}`, storageWriter: new RedisStorageWriter({ redis }) });
  }
  await redis.zadd('dcp:catalog', Date.now() + 60_000, 'rt1/gone'); // a stale entry: skipped, not removed
  await catalog.list({ limit: 1 }); // the script is loaded once per client (EVALSHA, then EVAL on NOSCRIPT)
  let page: Awaited<ReturnType<typeof catalog.list>> | undefined;
  const commands = await clientCommands(async () => (page = await catalog.list({ limit: 100 })));
  t.equal(commands.length, 1, `one command: ${commands.map((c) => c[0]).join(', ')}`);
  t.equal(commands[0]![0]!.toLowerCase(), 'evalsha');
  t.equal(page!.items.length, 100);
  t.equal(page!.items[0]!.id, 'rt1/ck-119', 'newest first');
  const { committedAt: _c, metadata: _m, ...summary } = await catalog.get('rt1/ck-119');
  t.same(page!.items[0], summary, 'the summary get() gives (read with separate commands)');
  t.same(Object.keys(page!.items[0]!).sort(), ['createdAt', 'id', 'itemCount', 'state', 'storedBytes', 'totalBytes', 'worldSize']);
  t.not(await redis.zscore('dcp:catalog', 'rt1/gone'), null, 'listing wrote nothing');
  const rest = await catalog.list({ limit: 100, cursor: page!.nextCursor! });
  t.same(rest.items.map((i) => i.id), ['rt1/ck-019', 'rt1/ck-018', ...Array.from({ length: 18 }, (_, i) => `rt1/ck-${String(17 - i).padStart(3, '0')}`)]);
  t.equal(rest.nextCursor, null);
  const filtered = await catalog.list({ prefix: 'rt1/ck-11', state: 'committed', limit: 3 });
  t.same(filtered.items.map((i) => i.id), ['rt1/ck-119', 'rt1/ck-118', 'rt1/ck-117']);
});
