/** The API over real sockets: a listening app, raw HTTP, and `npm start`'s entry as a process. */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import t from 'tap';
import { buildApp } from '../../src/server/app.js';
import { loadConfig } from '../../src/server/config.js';
import { probeRedis, startServer } from '../../src/server/start.js';
import { nodeArgs, repoRoot } from '../helpers/child.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';
import { saveSharded, TOKEN } from './fixture.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

/** Sends raw bytes and returns the raw answer (for requests fetch refuses to make). */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

t.test('a listening server: every route over real HTTP, security headers, raw junk answered in the problem shape', async (t) => {
  const app = await buildApp({ redis, adminToken: TOKEN });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => app.close());
  await saveSharded(redis, 'live/ck');
  const id = encodeURIComponent('live/ck');

  const health = await fetch(`${address}/health`);
  t.equal(health.status, 200);
  t.equal(health.headers.get('x-content-type-options'), 'nosniff', 'helmet headers');
  t.match(health.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  t.equal(health.headers.get('x-powered-by'), null);

  const list = (await (await fetch(`${address}/checkpoints?prefix=live/&limit=5`)).json()) as { items: Array<{ id: string }> };
  t.same(list.items.map((i) => i.id), ['live/ck']);
  const one = await fetch(`${address}/checkpoints/${id}`);
  t.equal(one.status, 200);
  t.equal(((await one.json()) as { worldSize: number }).worldSize, 2);

  const validate = await fetch(`${address}/checkpoints/${id}/validate?deep=true`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
  t.same(await validate.json(), { ok: true, problems: [] });
  const refused = await fetch(`${address}/checkpoints/${id}`, { method: 'DELETE' });
  t.equal(refused.status, 401);
  t.match(refused.headers.get('content-type'), /^application\/problem\+json/);
  const deleted = await fetch(`${address}/checkpoints/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(deleted.status, 204);
  t.equal((await fetch(`${address}/checkpoints/${id}`)).status, 404);

  const port = Number(new URL(address).port);
  const junk = await rawRequest(port, 'THIS IS NOT HTTP\r\n\r\n');
  t.match(junk, /^HTTP\/1\.1 400 Bad Request\r\n/);
  t.match(junk, /Content-Type: application\/problem\+json/);
  t.match(JSON.parse(junk.split('\r\n\r\n')[1]!), { statusCode: 400, code: 'MALFORMED_REQUEST', error: 'Bad Request' });
  const hugeHeader = await rawRequest(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.match(hugeHeader, /^HTTP\/1\.1 431 /);
  t.match(JSON.parse(hugeHeader.split('\r\n\r\n')[1]!), { statusCode: 431, code: 'HEADERS_TOO_LARGE' });
});

t.test('startServer: checks Redis, warns about eviction and an open API, closes in order', async (t) => {
  await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
  const lines: string[] = [];
  const { default: pino } = await import('pino');
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
  const running = await startServer({ ...loadConfig({ REDIS_URL: server.url }), port: 0 }, log);
  await redis.config('SET', 'maxmemory-policy', 'noeviction');
  t.equal(running.privateRedis, undefined);
  const text = lines.join('');
  t.match(text, /maxmemory-policy is \\"allkeys-lru\\"/, 'loud eviction warning');
  t.match(text, /ADMIN_TOKEN is not set/, 'open API warning');
  t.equal((await fetch(`${running.address}/health`)).status, 200);
  await running.close();
  await running.close();
  await t.rejects(fetch(`${running.address}/health`), 'no longer listening');
  t.equal(await redis.ping(), 'PONG', 'the test Redis is untouched');
});

t.test('startServer: with the default REDIS_URL unanswered, starts a private redis-server and stops it on close', async (t) => {
  const nobody = `redis://127.0.0.1:${await freePort()}`;
  const lines: string[] = [];
  const { default: pino } = await import('pino');
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
  // redisUrlIsDefault is what REDIS_URL being unset means; the URL itself is a free port so no real server is touched.
  const running = await startServer({ ...loadConfig({}), redisUrl: nobody, redisUrlIsDefault: true, port: 0 }, log);
  const pid = running.privateRedis?.pid;
  t.ok(pid, 'started a private redis-server');
  t.match(lines.join(''), /starting a PRIVATE redis-server/);
  t.not(running.redisUrl, nobody);
  t.match((await probeRedis(running.redisUrl)).maxmemoryPolicy, 'noeviction');
  t.equal((await fetch(`${running.address}/health`)).status, 200);
  await running.close();
  t.throws(() => process.kill(pid!, 0), { code: 'ESRCH' }, 'the private redis-server is gone');

  const explicit = startServer({ ...loadConfig({ REDIS_URL: nobody }), port: 0 }, log);
  await t.rejects(explicit, { name: 'NoRedisError', message: /Cannot reach Redis .*ECONNREFUSED[\s\S]*REDIS_URL/ }, 'an explicit REDIS_URL is never replaced');
});

t.test('npm start entry: exit codes, then SIGTERM shuts down gracefully', async (t) => {
  const runMain = (env: NodeJS.ProcessEnv) => {
    const child = spawn(process.execPath, nodeArgs('src/server/main.ts'), { cwd: repoRoot, env: { PATH: process.env.PATH, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    return { child, exited, output: () => output };
  };

  const badConfig = runMain({ PORT: 'eighty' });
  t.equal(await badConfig.exited, 2, 'invalid configuration exits 2');
  t.match(badConfig.output(), /PORT must be an integer/);

  const noRedis = runMain({ REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
  t.equal(await noRedis.exited, 3, 'no Redis exits 3');
  t.match(noRedis.output(), /Cannot reach Redis[\s\S]*docker compose up -d redis/);

  const port = await freePort();
  const ok = runMain({ REDIS_URL: server.url, PORT: String(port), ADMIN_TOKEN: TOKEN });
  const deadline = Date.now() + 30_000;
  while (!ok.output().includes('listening at') && Date.now() < deadline && ok.child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  t.match(ok.output(), /listening at/);
  t.notMatch(ok.output(), /the API is OPEN/, 'no open-API warning with a token');
  t.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  ok.child.kill('SIGTERM');
  t.equal(await ok.exited, 0, 'SIGTERM: clean exit');
  t.match(ok.output(), /shut down cleanly/);
});
