/**
 * The redis-dcp CLI end to end, as child processes (src/cli/main.ts, compiled: test/helpers/child.ts nodeArgs).
 * A CLI process that connects to Redis spends about half a second of CPU starting (mostly ioredis;
 * --help and usage errors load neither it nor the catalog): independent invocations run at
 * once, and so do the tests (t.jobs); the one order that matters (ls counts the checkpoint rm
 * deletes) is awaited explicitly.
 */
import { execFile, spawn } from 'node:child_process';
import t from 'tap';
import { KeySpace } from '../../src/redis/keys.js';
import { acquireLock, createRedlock } from '../../src/redis/lock.js';
import { nodeArgs, repoRoot } from '../helpers/child.js';
import { freePort, RedisServer } from '../helpers/redis-server.js';
import { floatTensor, saveSharded, saveSimple } from '../server/fixture.js';

const server = await RedisServer.start();
const redis = server.client();
t.teardown(() => server.stop());

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** At most this many CLI processes at once: each is CPU-bound while it starts (2 cores, 3 test files at once). */
const MAX_CLI = 4;
let running = 0;
const waiting: Array<() => void> = [];
async function withSlot<T>(run: () => Promise<T>): Promise<T> {
  if (running < MAX_CLI) running++;
  else await new Promise<void>((resolve) => waiting.push(resolve)); // handed a slot by a finishing process
  try {
    return await run();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running--;
  }
}

/** Runs the CLI against the test Redis (never the environment's REDIS_URL). */
function cli(...args: string[]): Promise<CliResult> {
  return withSlot(() => cliNow(args));
}

function cliNow(args: string[]): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: server.url, NO_COLOR: '1' };
  delete env.ADMIN_TOKEN;
  delete env.DCP_PREFIX;
  return new Promise((resolve) => {
    execFile(process.execPath, [...nodeArgs('src/cli/main.ts'), ...args], { cwd: repoRoot, env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

await saveSharded(redis, 'cli/run1/step-100');
await saveSimple(redis, 'cli/run1/step-200', { w: floatTensor(Array.from({ length: 512 }, (_, i) => i)) });
await saveSimple(redis, 'cli/run2/step-1');

t.jobs = 3;
/** Resolves once the ls test has listed cli/run2/step-1, which the rm test deletes. */
let listedAll!: () => void;
const lsDone = new Promise<void>((resolve) => (listedAll = resolve));

t.test('--help documents commands and exit codes', async (t) => {
  const res = await cli('--help');
  t.equal(res.code, 0);
  for (const word of ['ls', 'show', 'validate', 'rm', 'serve', '--redis-url', '--prefix', '--json', 'Exit codes']) t.match(res.stdout, word);
});

t.test('ls: a table by default, JSON with --json, filtered by id prefix, state and limit', async (t) => {
  const [table, json, limitedOut, none] = await Promise.all([cli('ls', 'cli/'), cli('ls', 'cli/run1/', '--json'), cli('ls', 'cli/', '--limit', '2', '--json'), cli('ls', 'cli/', '--state', 'incomplete')]).finally(listedAll);
  t.equal(table.code, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  t.match(lines[0], /^ID\s+STATE\s+CREATED\s+RANKS\s+SIZE\s+STORED\s+DEDUP\s+ITEMS$/);
  t.equal(lines.length, 4, 'header and three rows');
  t.match(lines[1], /^cli\/run2\/step-1\s+committed\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+1\s+16 B\s+16 B\s+1\.0x\s+1$/, 'newest first; a full save stored all its bytes (dedup 1.0x)');
  t.match(table.stdout, /cli\/run1\/step-100\s+committed\s+\S+ \S+\s+2\s+62 B\s+62 B\s+1\.0x\s+3/);

  t.equal(json.code, 0);
  const parsed = JSON.parse(json.stdout) as { items: Array<{ id: string; worldSize: number }> };
  t.same(parsed.items.map((i) => i.id), ['cli/run1/step-200', 'cli/run1/step-100']);
  t.equal(parsed.items[1]!.worldSize, 2);

  const limited = JSON.parse(limitedOut.stdout) as { items: unknown[] };
  t.equal(limited.items.length, 2);
  t.equal(none.stdout.trim(), 'no checkpoints');
});

t.test('show: summary and item table; --json has the full metadata', async (t) => {
  const [res, jsonOut] = await Promise.all([cli('show', 'cli/run1/step-100'), cli('show', 'cli/run1/step-100', '--json')]);
  t.equal(res.code, 0, res.stderr);
  t.match(res.stdout, /^id:\s+cli\/run1\/step-100$/m);
  t.match(res.stdout, /^ranks:\s+2$/m);
  t.match(res.stdout, /^model\.weight\s+tensor\s+float32\s+\[4, 3\]\s+2$/m);
  t.match(res.stdout, /^step\s+bytes\s+json/m);
  const json = JSON.parse(jsonOut.stdout);
  t.same(json.metadata.stateDictMetadata['model.bias'].size, [3]);
  t.equal(json.state, 'committed');
});

t.test('validate: 0 when intact, 1 with the problems when corrupted; progress on stderr', async (t) => {
  const clean = await cli('validate', 'cli/run1/step-200', '--deep');
  t.equal(clean.code, 0, clean.stderr);
  t.match(clean.stdout, /^OK: cli\/run1\/step-200 is intact \(every checksum verified\)/);
  t.match(clean.stderr, /checking checksums: 1\/1 data keys \(100%\)/, 'progress on stderr');

  const [key] = await redis.keys('dcp:data:cli/run1/step-200:*');
  await redis.setrange(key!, 7, 'X');
  const [shallow, deep, json] = await Promise.all([cli('validate', 'cli/run1/step-200'), cli('validate', 'cli/run1/step-200', '--deep'), cli('validate', 'cli/run1/step-200', '--deep', '--json', '--quiet')]);
  t.equal(shallow.code, 0, 'lengths are still right');
  t.equal(deep.code, 1);
  t.match(deep.stdout, /PROBLEMS: cli\/run1\/step-200 has 1 problem/);
  t.match(deep.stdout, /checksum_mismatch\s+w\s+dcp:data:cli\/run1\/step-200:/);
  t.equal(json.code, 1);
  t.equal(json.stderr, '', '--quiet: no progress');
  t.match(JSON.parse(json.stdout), { ok: false, problems: [{ kind: 'checksum_mismatch', fqn: 'w', key }] });
});

t.test('rm: deletes; then 4 (not found); 5 while a save holds the lock', async (t) => {
  await lsDone;
  const locked = new KeySpace().checkpoint('cli/run2/step-1').lock;
  const held = await acquireLock(createRedlock([redis]), locked, 'cli/run2/step-1', { clients: [redis], ttlMs: 60_000, waitMs: 0 }); // released below; the TTL only has to outlast a CLI start on a loaded machine
  const refused = await cli('rm', 'cli/run2/step-1');
  await held.release();
  t.equal(refused.code, 5, refused.stderr);
  t.match(refused.stderr, /locked/);
  t.equal(await redis.exists('dcp:ckpt:{cli/run2/step-1}:state'), 1, 'still there');

  const res = await cli('rm', 'cli/run2/step-1', '--json');
  t.equal(res.code, 0, res.stderr);
  t.match(JSON.parse(res.stdout), { id: 'cli/run2/step-1', deleted: true });
  t.same(await redis.keys('*cli/run2/step-1*'), []);
  const [again, show] = await Promise.all([cli('rm', 'cli/run2/step-1'), cli('show', 'cli/run2/step-1', '--json')]);
  t.equal(again.code, 4);
  t.match(again.stderr, /does not exist/);
  t.equal(show.code, 4);
  t.match(JSON.parse(show.stderr), { error: { code: 'CHECKPOINT_NOT_FOUND' } });
});

t.test('usage errors exit 2, no Redis exits 3', async (t) => {
  const usage = [[], ['frob'], ['show'], ['show', 'a b'], ['rm', 'x', 'y'], ['ls', '--deep'], ['ls', '--state', 'lost'], ['ls', '--limit', '0'], ['ls', '--bogus'], ['ls', '--prefix', 'bad prefix']];
  const dead = `redis://127.0.0.1:${await freePort()}`;
  const [res, ...results] = await Promise.all([cli('ls', '--redis-url', dead), ...usage.map((args) => cli(...args))]);
  for (const [i, args] of usage.entries()) {
    t.equal(results[i]!.code, 2, `${JSON.stringify(args)} → 2 (${results[i]!.stderr.trim().split('\n')[0]})`);
    t.match(results[i]!.stderr, /^redis-dcp: /);
  }
  t.equal(res.code, 3);
  t.match(res.stderr, /cannot reach Redis/);
  t.match(res.stderr, /ECONNREFUSED/);
});

t.test('--prefix selects another key namespace', async (t) => {
  await saveSimple(redis, 'elsewhere/one', undefined, 'team-b');
  const res = JSON.parse((await cli('ls', '--prefix', 'team-b', '--json')).stdout) as { items: Array<{ id: string }> };
  t.same(res.items.map((i) => i.id), ['elsewhere/one']);
});

t.test('serve runs the API until SIGTERM, then exits 0', async (t) => {
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  delete env.REDIS_URL;
  delete env.ADMIN_TOKEN;
  const child = spawn(process.execPath, [...nodeArgs('src/cli/main.ts'), 'serve', '--redis-url', server.url, '--port', String(port)], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const deadline = Date.now() + 30_000;
  while (!output.includes('listening at') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
  t.match(output, /listening at http:\/\/127\.0\.0\.1:\d+/);
  t.match(output, /ADMIN_TOKEN is not set: the API is OPEN/, 'warns that the API is open');
  const health = await fetch(`http://127.0.0.1:${port}/health`);
  t.equal(health.status, 200);
  const list = (await (await fetch(`http://127.0.0.1:${port}/checkpoints?prefix=cli/`)).json()) as { items: unknown[] };
  t.ok(list.items.length >= 2);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'clean exit on SIGTERM');
  t.match(output, /SIGTERM: shutting down/);
  t.match(output, /shut down cleanly/);
});
