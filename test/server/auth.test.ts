import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { tokensEqual } from '../../src/server/plugins/auth.js';
import { RedisServer } from '../helpers/redis-server.js';
import { saveSimple, TOKEN } from './fixture.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

const enc = encodeURIComponent;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

t.test('tokensEqual: equal only for the same string, any lengths', async (t) => {
  t.ok(tokensEqual(TOKEN, TOKEN));
  t.notOk(tokensEqual(TOKEN, `${TOKEN}x`));
  t.notOk(tokensEqual('', TOKEN));
  t.notOk(tokensEqual(TOKEN.slice(0, -1), TOKEN));
  t.notOk(tokensEqual('x'.repeat(10_000), TOKEN));
  t.notOk(tokensEqual(TOKEN.toUpperCase(), TOKEN));
});

t.test('with ADMIN_TOKEN: delete and validate need the bearer token; reads stay open', async (t) => {
  const app = await buildApp({ redis, adminToken: TOKEN, authFailureLimit: { max: 1000, timeWindowMs: 60_000 } });
  t.teardown(() => app.close());
  await saveSimple(redis, 'auth/a');
  const url = `/checkpoints/${enc('auth/a')}`;

  const none = await app.inject({ method: 'DELETE', url });
  t.equal(none.statusCode, 401);
  t.match(none.headers['content-type'], /problem\+json/);
  t.equal(none.headers['www-authenticate'], 'Bearer realm="redis-dcp"');
  t.match(none.json(), { statusCode: 401, code: 'UNAUTHORIZED', error: 'Unauthorized' });

  for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', `Bearer ${TOKEN} extra`, TOKEN]) {
    const res = await app.inject({ method: 'DELETE', url, headers: { authorization: header } });
    t.equal(res.statusCode, 401, `malformed header ${JSON.stringify(header.slice(0, 20))} is 401`);
  }
  for (const wrong of [`${TOKEN}x`, TOKEN.slice(0, -1), 'short', 'y'.repeat(5000), TOKEN.replace(/.$/, '0')]) {
    const res = await app.inject({ method: 'DELETE', url, headers: bearer(wrong) });
    t.equal(res.statusCode, 403, `wrong token of length ${wrong.length} is 403`);
    t.match(res.json(), { code: 'FORBIDDEN' });
  }
  const validateUrl = `${url}/validate?deep=true`;
  t.equal((await app.inject({ method: 'POST', url: validateUrl })).statusCode, 401);
  t.equal((await app.inject({ method: 'POST', url: validateUrl, headers: bearer('nope-nope-nope-nope') })).statusCode, 403);
  t.same((await app.inject({ method: 'POST', url: validateUrl, headers: bearer(TOKEN) })).json(), { ok: true, problems: [] });

  t.equal((await app.inject(url)).statusCode, 200, 'GET one is open');
  t.equal((await app.inject('/checkpoints')).statusCode, 200, 'list is open');
  t.equal((await app.inject('/health')).statusCode, 200, 'health is open');
  t.equal((await app.inject('/docs/json')).statusCode, 200, 'docs are open');

  t.equal(await redis.exists('dcp:ckpt:{auth/a}:state'), 1, 'nothing deleted by the refused attempts');
  t.equal((await app.inject({ method: 'DELETE', url, headers: { authorization: `bearer ${TOKEN}` } })).statusCode, 204, 'scheme is case-insensitive');
  t.equal(await redis.exists('dcp:ckpt:{auth/a}:state'), 0);
});

t.test('auth runs before id validation: no token, bad id is still 401', async (t) => {
  const app = await buildApp({ redis, adminToken: TOKEN });
  t.teardown(() => app.close());
  t.equal((await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('bad id')}` })).statusCode, 401);
  t.equal((await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('bad id')}`, headers: bearer(TOKEN) })).statusCode, 400);
});

t.test('ADMIN_TOKEN_READS protects reads too, but not health or docs', async (t) => {
  const app = await buildApp({ redis, adminToken: TOKEN, adminTokenReads: true });
  t.teardown(() => app.close());
  await saveSimple(redis, 'auth/reads');
  t.equal((await app.inject('/checkpoints')).statusCode, 401);
  t.equal((await app.inject({ url: '/checkpoints', headers: bearer('wrong-wrong-wrong-wrong') })).statusCode, 403);
  t.equal((await app.inject({ url: '/checkpoints', headers: bearer(TOKEN) })).statusCode, 200);
  t.equal((await app.inject(`/checkpoints/${enc('auth/reads')}`)).statusCode, 401);
  t.equal((await app.inject({ url: `/checkpoints/${enc('auth/reads')}`, headers: bearer(TOKEN) })).statusCode, 200);
  t.equal((await app.inject('/health')).statusCode, 200);
  t.equal((await app.inject('/docs/json')).statusCode, 200);
});

t.test('without a token everything is open', async (t) => {
  const app = await buildApp({ redis });
  t.teardown(() => app.close());
  await saveSimple(redis, 'auth/open');
  t.equal((await app.inject({ method: 'POST', url: `/checkpoints/${enc('auth/open')}/validate` })).statusCode, 200);
  t.equal((await app.inject({ method: 'DELETE', url: `/checkpoints/${enc('auth/open')}`, headers: bearer('anything-at-all-here') })).statusCode, 204);
});

t.test('failed authentications are rate limited per address; good requests are not', async (t) => {
  const app = await buildApp({ redis, adminToken: TOKEN, authFailureLimit: { max: 3, timeWindowMs: 60_000 } });
  t.teardown(() => app.close());
  await saveSimple(redis, 'auth/rl');
  const url = `/checkpoints/${enc('auth/rl')}/validate`;
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await app.inject({ method: 'POST', url, headers: bearer(`guess-guess-guess-${i}`) })).statusCode);
  t.same(statuses, [403, 403, 403, 429, 429]);
  const limited = await app.inject({ method: 'POST', url });
  t.equal(limited.statusCode, 429);
  t.match(limited.headers['content-type'], /problem\+json/);
  t.match(limited.json(), { statusCode: 429, code: 'TOO_MANY_AUTH_FAILURES', error: 'Too Many Requests' });
  t.ok(limited.headers['retry-after'], 'says when to retry');
  // Requests with the right token and open routes are not counted nor blocked.
  for (let i = 0; i < 10; i++) t.equal((await app.inject({ method: 'POST', url, headers: bearer(TOKEN) })).statusCode, 200);
  for (let i = 0; i < 10; i++) t.equal((await app.inject('/checkpoints')).statusCode, 200);
  // Another address has its own budget.
  t.equal((await app.inject({ method: 'POST', url, remoteAddress: '10.9.8.7' })).statusCode, 401);
});

t.test('buildApp refuses weak or malformed tokens', async (t) => {
  await t.rejects(buildApp({ redis, adminToken: '' }), /at least 16/);
  await t.rejects(buildApp({ redis, adminToken: 'short' }), /at least 16/);
  await t.rejects(buildApp({ redis, adminToken: 'has a space in it ok' }), /visible ASCII/);
  await t.rejects(buildApp({ redis, adminTokenReads: true }), /needs an adminToken/);
});
