/**
 * Security headers: helmet runs once at start-up (src/server/plugins/security.ts) and every
 * answer, errors included, carries the headers its per-request middleware set before.
 */
import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { helmetHeaders } from '../../src/server/plugins/security.js';
import { RedisServer } from '../helpers/redis-server.js';
import { TOKEN } from './fixture.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

/** What helmet 8 sets with its defaults (the names only; the CSP is checked on its own). */
const HELMET_DEFAULTS = [
  'content-security-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
  'origin-agent-cluster',
  'referrer-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-dns-prefetch-control',
  'x-download-options',
  'x-frame-options',
  'x-permitted-cross-domain-policies',
  'x-xss-protection',
];

t.test('helmetHeaders records what the middleware sets, for the options given', async (t) => {
  const plain = helmetHeaders({});
  t.same(Object.keys(plain).sort(), HELMET_DEFAULTS);
  t.equal(plain['x-frame-options'], 'SAMEORIGIN');
  t.match(plain['content-security-policy'], /upgrade-insecure-requests/);
  const noUpgrade = helmetHeaders({ contentSecurityPolicy: { useDefaults: true, directives: { 'upgrade-insecure-requests': null } } });
  t.notMatch(noUpgrade['content-security-policy'], /upgrade-insecure-requests/);
  t.ok(Object.isFrozen(plain), 'one frozen object, shared by every answer');
  t.throws(() => helmetHeaders({ contentSecurityPolicy: { directives: { 'default-src': ['self'] } } }), 'helmet refuses a bad directive at start-up, not per request');
});

t.test('every answer carries the headers: a page, a 404, a 401, Swagger UI', async (t) => {
  const app = await buildApp({ redis, adminToken: TOKEN });
  t.teardown(() => app.close());
  const answers = {
    page: await app.inject({ method: 'GET', url: '/checkpoints?limit=5' }),
    missing: await app.inject({ method: 'GET', url: '/checkpoints/no-such' }),
    unauthorized: await app.inject({ method: 'DELETE', url: '/checkpoints/no-such' }),
    unknownRoute: await app.inject({ method: 'GET', url: '/nothing-here' }),
    docs: await app.inject({ method: 'GET', url: '/docs/' }),
  };
  t.same(Object.fromEntries(Object.entries(answers).map(([k, a]) => [k, a.statusCode])), { page: 200, missing: 404, unauthorized: 401, unknownRoute: 404, docs: 200 });
  for (const [name, answer] of Object.entries(answers)) {
    for (const header of HELMET_DEFAULTS) t.ok(answer.headers[header], `${name}: ${header}`);
    const csp = String(answer.headers['content-security-policy']);
    t.match(csp, /default-src 'self'/, `${name}: CSP`);
    t.match(csp, /script-src 'self'(;| 'sha256-)/, `${name}: scripts from the server itself (and Swagger UI's hashes, if it lists any)`);
    t.match(csp, /style-src 'self' 'unsafe-inline'/);
    t.notMatch(csp, /upgrade-insecure-requests/, `${name}: plain HTTP is not upgraded`);
    t.equal(answer.headers['x-powered-by'], undefined);
  }
});
