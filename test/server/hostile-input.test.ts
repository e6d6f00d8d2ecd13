/**
 * Generated hostile requests (fast-check): odd methods, ids, percent-encodings, query
 * parameters, headers and bodies. None may produce a 5xx, and every error must be a
 * problem+json body of exactly the documented shape. The keyspace must not change.
 */
import fc from 'fast-check';
import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { RedisServer } from '../helpers/redis-server.js';
import { saveSimple, TOKEN } from './fixture.js';

const server = await RedisServer.start();
const redis = server.client();
const app = await buildApp({ redis, adminToken: TOKEN, authFailureLimit: { max: 1_000_000, timeWindowMs: 60_000 } });
t.teardown(async () => {
  await app.close();
  await server.stop();
});

const piece = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom('%', '%2F', '%2f', '%00', '..', '%2e%2e', '{x}', '*', '?', '#', '%E0%A4%A', '%ff', '__proto__', 'constructor', 'a'.repeat(600), 'keep/me'),
);
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS'),
  url: fc.oneof(
    piece.map((s) => `/checkpoints/${s}`),
    piece.map((s) => `/checkpoints/${encodeURIComponent(s)}`),
    piece.map((s) => `/checkpoints/${encodeURIComponent(s)}/validate`),
    fc.tuple(piece, piece).map(([k, v]) => `/checkpoints?${k}=${v}`),
    fc.tuple(fc.constantFrom('limit', 'prefix', 'cursor', 'state', 'deep'), piece).map(([k, v]) => `/checkpoints?${k}=${encodeURIComponent(v)}`),
    fc.tuple(fc.constantFrom('deep', 'x'), piece).map(([k, v]) => `/checkpoints/keep%2Fme/validate?${k}=${encodeURIComponent(v)}`),
    piece.map((s) => `/${s}`),
  ),
  headers: fc.dictionary(
    fc.constantFrom('authorization', 'content-type', 'accept', 'x-forwarded-for'),
    fc.oneof(fc.constantFrom(`Bearer ${TOKEN}`, 'Bearer', 'application/json', 'text/plain'), fc.string({ maxLength: 40 }).filter((s) => /^[\x20-\x7e]*$/.test(s))),
  ),
  body: fc.option(fc.oneof(fc.string({ maxLength: 100 }), fc.json()), { nil: undefined }),
});

t.test('no generated request gets a 5xx or an error outside the problem shape', async (t) => {
  await saveSimple(redis, 'keep/me');
  const keysBefore = (await redis.keys('*')).sort();
  const failures: string[] = [];
  await fc.assert(
    fc.asyncProperty(request, async ({ method, url, headers, body }) => {
      // Never delete the canary: a DELETE of keep/me with the token is a legitimate request.
      if (method === 'DELETE' && /keep(%2F|\/)me/i.test(url)) return;
      let res;
      try {
        res = await app.inject({ method: method as 'GET', url, headers, ...(body !== undefined && method !== 'GET' ? { payload: body } : {}) });
      } catch {
        return; // light-my-request refused to build the request (not something a server sees)
      }
      const where = `${method} ${url.slice(0, 80)} ${JSON.stringify(headers).slice(0, 80)}`;
      if (res.statusCode >= 500) failures.push(`${where} -> ${res.statusCode} ${res.body.slice(0, 200)}`);
      if (res.statusCode >= 400) {
        const ok = String(res.headers['content-type']).startsWith('application/problem+json');
        const shape = Object.keys(JSON.parse(res.body) as object).sort().join();
        if (!ok || shape !== 'code,error,message,statusCode') failures.push(`${where} -> ${res.statusCode} shape ${shape} ${String(res.headers['content-type'])}`);
      }
    }),
    { numRuns: 1500, seed: 20261128 },
  );
  t.same(failures.slice(0, 10), [], 'no 5xx, every error in the documented shape');
  t.same((await redis.keys('*')).sort(), keysBefore, 'the keyspace is unchanged');
});
