import t, { type Test } from 'tap';
import { save } from '../../src/core/save.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp, type AdminApp } from '../../src/server/app.js';
import { KeySpace } from '../../src/redis/keys.js';
import { acquireLock, createRedlock } from '../../src/redis/lock.js';
import { RedisServer } from '../helpers/redis-server.js';
import { floatTensor, saveSharded, saveSimple } from './fixture.js';

const server = await RedisServer.start();
const redis = server.client();
const app: AdminApp = await buildApp({ redis });
t.teardown(async () => {
  await app.close();
  await server.stop();
});

const PROBLEM_KEYS = ['code', 'error', 'message', 'statusCode'];

function expectProblem(t: Test, res: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, code: string): Record<string, unknown> {
  t.equal(res.statusCode, status, `status ${status} (${res.body.slice(0, 200)})`);
  t.match(String(res.headers['content-type']), /^application\/problem\+json/);
  const body = JSON.parse(res.body) as Record<string, unknown>;
  t.same(Object.keys(body).sort(), PROBLEM_KEYS, 'exactly the problem fields');
  t.equal(body.statusCode, status);
  t.equal(body.code, code);
  return body;
}

const enc = encodeURIComponent;

t.test('GET /health answers 200 with Redis up', async (t) => {
  const res = await app.inject('/health');
  t.equal(res.statusCode, 200);
  const body = res.json();
  t.equal(body.status, 'ok');
  t.equal(body.redis.reachable, true);
  t.ok(body.redis.latencyMs >= 0);
});

t.test('GET /checkpoints pages through many checkpoints newest first, never repeating or skipping', async (t) => {
  const ids = Array.from({ length: 130 }, (_, i) => `page/run-${i % 3}/ck-${String(i).padStart(3, '0')}`);
  for (const id of ids) await saveSimple(redis, id, { w: floatTensor([1, 2]) });
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await app.inject({ url: '/checkpoints', query: { prefix: 'page/', limit: '40', ...(cursor ? { cursor } : {}) } });
    t.equal(res.statusCode, 200);
    const body = res.json() as { items: Array<{ id: string; state: string; createdAt: string; worldSize: number; totalBytes: number; itemCount: number }>; nextCursor: string | null };
    t.ok(body.items.length <= 40);
    seen.push(...body.items.map((i) => i.id));
    for (const item of body.items) {
      t.same(Object.keys(item).sort(), ['createdAt', 'id', 'itemCount', 'state', 'storedBytes', 'totalBytes', 'worldSize']);
      t.equal(item.state, 'committed');
      t.equal(item.totalBytes, 8);
      t.equal(item.itemCount, 1);
      t.equal(item.worldSize, 1);
      t.ok(!Number.isNaN(Date.parse(item.createdAt)));
    }
    cursor = body.nextCursor;
    pages++;
  } while (cursor !== null);
  t.equal(pages, 4, '130 items in pages of 40');
  t.equal(seen.length, ids.length);
  t.same(new Set(seen), new Set(ids), 'each checkpoint exactly once');
  t.equal(seen[0], ids.at(-1), 'newest first');
  const filtered = (await app.inject({ url: '/checkpoints', query: { prefix: 'page/run-1/', limit: '1000' } })).json() as { items: Array<{ id: string }>; nextCursor: null };
  t.equal(filtered.items.length, ids.filter((id) => id.startsWith('page/run-1/')).length);
  t.equal(filtered.nextCursor, null);
  const defaultPage = (await app.inject('/checkpoints')).json() as { items: unknown[] };
  t.equal(defaultPage.items.length, 100, 'default limit 100');
  const emptyCursor = (await app.inject('/checkpoints?cursor=&prefix=page/')).json() as { items: Array<{ id: string }> };
  t.equal(emptyCursor.items[0]!.id, ids.at(-1), 'an empty cursor is the first page');
});

t.test('GET /checkpoints/{id} returns summary and full metadata; %2F in the id works', async (t) => {
  await saveSharded(redis, 'meta/sharded');
  const res = await app.inject(`/checkpoints/${enc('meta/sharded')}`);
  t.equal(res.statusCode, 200, res.body.slice(0, 300));
  const body = res.json();
  t.equal(body.id, 'meta/sharded');
  t.equal(body.state, 'committed');
  t.equal(body.worldSize, 2);
  t.equal(body.itemCount, 3);
  t.equal(body.totalBytes, 4 * 12 + 4 * 3 + JSON.stringify(42).length);
  t.match(body.committedAt, /^\d{4}-\d\d-\d\dT/);
  const weight = body.metadata.stateDictMetadata['model.weight'];
  t.equal(weight.type, 'tensor');
  t.equal(weight.properties.dtype, 'float32');
  t.same(weight.size, [4, 3]);
  t.same(
    [...weight.chunks].sort((a: { offsets: number[] }, b: { offsets: number[] }) => a.offsets[0]! - b.offsets[0]!),
    [
      { offsets: [0, 0], sizes: [2, 3] },
      { offsets: [2, 0], sizes: [2, 3] },
    ],
  );
  t.same(body.metadata.stateDictMetadata.step, { type: 'bytes', encoding: 'json' });
  t.same(body.metadata.plannerData['model.weight'], ['model', 'weight']);
  t.ok(body.metadata.storageData, 'storage data included');
  // Lower-case percent-encoding is the same id.
  t.equal((await app.inject('/checkpoints/meta%2fsharded')).statusCode, 200);
  // An unencoded "/" is a different route: 404 with a hint.
  const unencoded = expectProblem(t, await app.inject('/checkpoints/meta/sharded'), 404, 'ROUTE_NOT_FOUND');
  t.match(String(unencoded.message), /%2F/);
  expectProblem(t, await app.inject(`/checkpoints/${enc('meta/none')}`), 404, 'CHECKPOINT_NOT_FOUND');
});

t.test('incomplete checkpoints are listed as such and have null metadata', async (t) => {
  // A save whose data write fails after the save began leaves an uncommitted checkpoint behind.
  class CrashingWriter extends RedisStorageWriter {
    override async writeData(...args: Parameters<RedisStorageWriter['writeData']>): ReturnType<RedisStorageWriter['writeData']> {
      await super.writeData(...args);
      throw new Error('simulated crash');
    }
  }
  await t.rejects(save({ w: floatTensor([1]) }, { checkpointId: 'crash/one', storageWriter: new CrashingWriter({ redis }) }));
  const list = (await app.inject({ url: '/checkpoints', query: { prefix: 'crash/', state: 'incomplete' } })).json() as { items: Array<{ id: string; state: string }> };
  t.same(list.items.map((i) => [i.id, i.state]), [['crash/one', 'incomplete']]);
  const got = (await app.inject(`/checkpoints/${enc('crash/one')}`)).json();
  t.equal(got.state, 'incomplete');
  t.equal(got.metadata, null);
  t.equal(got.committedAt, null);
  const report = (await app.inject({ method: 'POST', url: `/checkpoints/${enc('crash/one')}/validate` })).json();
  t.equal(report.ok, false);
  t.equal(report.problems[0].kind, 'not_committed');
  t.equal((await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('crash/one')}` })).statusCode, 204);
});

t.test('POST /checkpoints/{id}/validate: clean, then a corrupted byte (deep only), then a truncated key', async (t) => {
  await saveSimple(redis, 'val/a', { w: floatTensor(Array.from({ length: 1000 }, (_, i) => i)) });
  const url = `/checkpoints/${enc('val/a')}/validate`;
  const clean = await app.inject({ method: 'POST', url });
  t.equal(clean.statusCode, 200);
  t.same(clean.json(), { ok: true, problems: [] });
  t.same((await app.inject({ method: 'POST', url: `${url}?deep=true` })).json(), { ok: true, problems: [] });

  const [key] = await redis.keys('dcp:data:val/a:*');
  t.ok(key, 'found the data key');
  await redis.setrange(key!, 100, '\xff\xfe');
  t.same((await app.inject({ method: 'POST', url: `${url}?deep=false` })).json(), { ok: true, problems: [] }, 'shallow validation only checks lengths');
  const deep = (await app.inject({ method: 'POST', url: `${url}?deep=true` })).json();
  t.equal(deep.ok, false);
  t.equal(deep.problems.length, 1);
  t.match(deep.problems[0], { kind: 'checksum_mismatch', fqn: 'w', key });

  await redis.set(key!, 'short');
  const truncated = (await app.inject({ method: 'POST', url })).json();
  t.match(truncated.problems[0], { kind: 'wrong_length', fqn: 'w', key });
  expectProblem(t, await app.inject({ method: 'POST', url: `/checkpoints/${enc('val/none')}/validate` }), 404, 'CHECKPOINT_NOT_FOUND');
});

t.test('tampered metadata is a 422 problem, not a 5xx', async (t) => {
  await saveSimple(redis, 'tamper/a');
  await redis.set('dcp:ckpt:{tamper/a}:meta', '{"stateDictMetadata": {"w": {"type": "tensor"}}}');
  const body = expectProblem(t, await app.inject(`/checkpoints/${enc('tamper/a')}`), 422, 'METADATA_INVALID');
  t.match(String(body.message), /stateDictMetadata/);
  const report = (await app.inject({ method: 'POST', url: `/checkpoints/${enc('tamper/a')}/validate` })).json();
  t.equal(report.problems[0].kind, 'metadata_invalid');
  await redis.del('dcp:ckpt:{tamper/a}:state');
  await redis.set('dcp:ckpt:{tamper/a}:state', 'not a hash');
  expectProblem(t, await app.inject(`/checkpoints/${enc('tamper/a')}`), 422, 'STORED_DATA_INVALID');
});

t.test('DELETE /checkpoints/{id}: 204 removes every key, 404 after, 409 while locked', async (t) => {
  await saveSharded(redis, 'del/a');
  const before = (await redis.keys('*del/a*')).length;
  t.ok(before > 3, `keys exist (${before})`);
  const res = await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('del/a')}` });
  t.equal(res.statusCode, 204);
  t.equal(res.body, '');
  t.same(await redis.keys('*del/a*'), [], 'no key of the checkpoint is left');
  expectProblem(t, await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('del/a')}` }), 404, 'CHECKPOINT_NOT_FOUND');
  expectProblem(t, await app.inject(`/checkpoints/${enc('del/a')}`), 404, 'CHECKPOINT_NOT_FOUND');

  await saveSimple(redis, 'del/locked');
  const redlock = createRedlock([redis]);
  const held = await acquireLock(redlock, new KeySpace().checkpoint('del/locked').lock, 'del/locked', { clients: [redis], ttlMs: 10_000, waitMs: 0 });
  try {
    const locked = expectProblem(t, await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('del/locked')}` }), 409, 'CHECKPOINT_LOCKED');
    t.match(String(locked.message), /locked/);
    t.equal((await app.inject(`/checkpoints/${enc('del/locked')}`)).json().state, 'committed', 'still there');
  } finally {
    await held.release();
  }
  t.equal((await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('del/locked')}` })).statusCode, 204, 'deletable once the lock is free');
});

t.test('bad ids and parameters: 400 naming the rule, before Redis is touched', async (t) => {
  const cases: Array<[string, string, string, RegExp]> = [
    ['GET', `/checkpoints/${enc('bad id')}`, 'INVALID_CHECKPOINT_ID', /letters, digits/],
    ['GET', `/checkpoints/${enc('a//b')}`, 'INVALID_CHECKPOINT_ID', /empty path segments/],
    ['GET', `/checkpoints/${enc('a/../b')}`, 'INVALID_CHECKPOINT_ID', /"\.\."/],
    ['GET', `/checkpoints/${enc('/lead')}`, 'INVALID_CHECKPOINT_ID', /start or end/],
    ['GET', `/checkpoints/${enc('x{tag}')}`, 'INVALID_CHECKPOINT_ID', /hash-tag/],
    ['GET', `/checkpoints/${'a'.repeat(513)}`, 'INVALID_CHECKPOINT_ID', /1-512 characters/],
    ['DELETE', `/checkpoints/${enc('a*')}`, 'INVALID_CHECKPOINT_ID', /glob/],
    ['POST', `/checkpoints/${enc('a b')}/validate`, 'INVALID_CHECKPOINT_ID', /letters/],
    ['GET', '/checkpoints?limit=0', 'INVALID_PARAMETER', /"limit" must be >= 1/],
    ['GET', '/checkpoints?limit=1001', 'INVALID_PARAMETER', /"limit" must be <= 1000/],
    ['GET', '/checkpoints?limit=ten', 'INVALID_PARAMETER', /"limit" must be integer/],
    ['GET', '/checkpoints?limit=1.5', 'INVALID_PARAMETER', /"limit" must be integer/],
    ['GET', '/checkpoints?limit=1&limit=2', 'INVALID_PARAMETER', /"limit"/],
    ['GET', '/checkpoints?prefix=a%20b', 'INVALID_PARAMETER', /"prefix" must match pattern/],
    ['GET', '/checkpoints?state=lost', 'INVALID_PARAMETER', /"state"/],
    ['GET', '/checkpoints?cursor=%24%24', 'INVALID_PARAMETER', /"cursor"/],
    ['GET', '/checkpoints?colour=red', 'INVALID_PARAMETER', /unknown query parameter "colour"/],
    ['POST', `/checkpoints/ok/validate?deep=maybe`, 'INVALID_PARAMETER', /"deep" must be boolean/],
    ['GET', '/checkpoints/%E0%A4%A', 'BAD_REQUEST', /not a valid url/],
  ];
  await redis.config('RESETSTAT');
  for (const [method, url, code, rule] of cases) {
    const body = expectProblem(t, await app.inject({ method: method as 'GET', url }), 400, code);
    t.match(String(body.message), rule, `${method} ${url.slice(0, 60)}`);
  }
  const stats = await redis.info('commandstats');
  const commands = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => m[1]);
  t.same(commands.filter((c) => c !== 'config' && c !== 'info'), [], 'no command reached Redis for bad input');

  // A cursor of the right alphabet that the server never issued is a 400 from the catalog.
  expectProblem(t, await app.inject('/checkpoints?cursor=Zm9vYmFy'), 400, 'INVALID_CURSOR');

  // The same answers from an app whose Redis does not exist: validation needs no Redis.
  const offline = await buildApp({ redis: 'redis://127.0.0.1:1' });
  t.teardown(() => offline.close());
  expectProblem(t, await offline.inject(`/checkpoints/${enc('bad id')}`), 400, 'INVALID_CHECKPOINT_ID');
  expectProblem(t, await offline.inject('/checkpoints?limit=0'), 400, 'INVALID_PARAMETER');
  expectProblem(t, await offline.inject(`/checkpoints/${enc('fine/id')}`), 503, 'REDIS_UNAVAILABLE');
  const health = await offline.inject('/health');
  t.equal(health.statusCode, 503);
  t.match(health.json(), { status: 'unavailable', redis: { reachable: false } });
});

t.test('other bad requests are 4xx problems: oversized URL, body, unknown routes, methods', async (t) => {
  expectProblem(t, await app.inject(`/checkpoints/${'a'.repeat(5000)}`), 414, 'URL_TOO_LONG');
  expectProblem(t, await app.inject(`/checkpoints?prefix=${'a'.repeat(5000)}`), 414, 'URL_TOO_LONG');
  expectProblem(t, await app.inject('/nowhere'), 404, 'ROUTE_NOT_FOUND');
  expectProblem(t, await app.inject({ method: 'PUT', url: '/checkpoints/x' }), 404, 'ROUTE_NOT_FOUND');
  const big = await app.inject({ method: 'POST', url: '/checkpoints/x/validate', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ pad: 'x'.repeat(20_000) }) });
  expectProblem(t, big, 413, 'PAYLOAD_TOO_LARGE');
  const badJson = await app.inject({ method: 'POST', url: '/checkpoints/x/validate', headers: { 'content-type': 'application/json' }, payload: '{"oops' });
  t.equal(badJson.statusCode, 400);
  t.match(String(badJson.headers['content-type']), /problem\+json/);
  const badType = await app.inject({ method: 'POST', url: '/checkpoints/x/validate', headers: { 'content-type': 'application/x-evil' }, payload: 'x' });
  expectProblem(t, badType, 415, 'UNSUPPORTED_MEDIA_TYPE');
});

t.test('a prefix other than the default is honoured', async (t) => {
  const other = await buildApp({ redis, prefix: 'other-ns' });
  t.teardown(() => other.close());
  await saveSimple(redis, 'ns/only-here', undefined, 'other-ns');
  t.same(((await other.inject('/checkpoints')).json() as { items: Array<{ id: string }> }).items.map((i) => i.id), ['ns/only-here']);
  expectProblem(t, await app.inject(`/checkpoints/${enc('ns/only-here')}`), 404, 'CHECKPOINT_NOT_FOUND');
  await t.rejects(buildApp({ redis, prefix: 'bad prefix' }), { code: 'INVALID_CHECKPOINT_ID' });
});

t.test('a client passed in is not closed by the app', async (t) => {
  const borrowed = server.client();
  const temp = await buildApp({ redis: borrowed });
  await temp.ready();
  await temp.close();
  t.equal(await borrowed.ping(), 'PONG');
});
