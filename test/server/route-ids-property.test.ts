/**
 * Property-based tests (fast-check, fixed seeds) of checkpoint ids, list prefixes and
 * cursors through every route of the admin API that takes one, over real HTTP (so no
 * client-side URL normalisation hides "." or ".." segments), with and without the token.
 *
 * The private Redis is set up so that a stray key access cannot go unnoticed:
 * - the apps connect as the `default` user, whose ACL allows only keys matching `dcp:*`:
 *   any command on a key outside the namespace is refused and recorded in ACL LOG, which
 *   must stay empty;
 * - sentinel keys outside the namespace (other prefixes, the bare prefix, glob characters,
 *   look-alike Unicode, a real checkpoint of another prefix, the namespace in db 1) and
 *   two committed checkpoints inside it are snapshotted with DUMP (and PTTL); after every
 *   request the whole keyspace must be byte-identical (a DELETE of a checkpoint this test
 *   created may only remove that checkpoint's keys and bump the fencing counter);
 * - INFO commandstats is reset before each request: a request whose id or parameters are
 *   invalid (or whose auth fails) must reach Redis with no command at all, one with a valid
 *   id must reach it (the lookup happened).
 * Every answer is 2xx or 4xx; every 4xx is a problem+json body of the documented shape.
 * At the end the committed checkpoints still load bit for bit and deep-validate.
 */
import { randomBytes } from 'node:crypto';
import { Agent, STATUS_CODES, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import t from 'tap';
import { save } from '../../src/core/save.js';
import type { StateDict } from '../../src/core/state-dict.js';
import { Tensor } from '../../src/core/tensor.js';
import { checkpointIdProblem } from '../../src/redis/checkpoint-id.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp, MAX_URL_LENGTH, type AdminApp } from '../../src/server/app.js';
import { assertStoreAgrees, committed } from '../helpers/invariants.js';
import { hexKey, snapshot, unhex, type Snapshot } from '../helpers/keyspace.js';
import { anyString, specValid, validIdExcept, wellFormed } from '../helpers/id-arbitraries.js';
import { RedisServer } from '../helpers/redis-server.js';
import { TOKEN } from './fixture.js';

const PREFIX = 'dcp';
const SEED = 20261129;
const KEEP = ['keep/me', 'keep/two'] as const;

// ---------------------------------------------------------------------------------------
// Generators (the same shapes as test/redis/library-ids-property.test.ts)

const validId = validIdExcept(KEEP);

const anyId = fc.oneof({ arbitrary: anyString, weight: 5 }, { arbitrary: validId, weight: 3 }, { arbitrary: fc.constantFrom(...KEEP), weight: 1 });

// ---------------------------------------------------------------------------------------
// URL encodings

type Encoding = 'component' | 'every-byte' | 'lower-hex' | 'raw';

function utf8Bytes(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  // Lone surrogates come out as their 3-byte (WTF-8) form, which a server must refuse.
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/** Percent-encodes a string for a path segment or query value; decoding gives the string back. */
function encode(s: string, encoding: Encoding): string {
  if (encoding === 'raw') return s;
  let out = '';
  for (const ch of s) {
    if (encoding !== 'every-byte' && /^[A-Za-z0-9\-_.~]$/.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of utf8Bytes(ch.codePointAt(0)!)) {
      const hex = b.toString(16).padStart(2, '0');
      out += `%${encoding === 'lower-hex' ? hex : hex.toUpperCase()}`;
    }
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const encoding = fc.constantFrom<Encoding>('component', 'component', 'every-byte', 'lower-hex', 'raw');

// ---------------------------------------------------------------------------------------
// The private Redis: an inspector user sees everything, the apps' default user only dcp:*

const server = await RedisServer.start();
const bootstrap = server.client(); // the default user; confined to dcp:* below
const inspectorPassword = randomBytes(16).toString('hex');
await bootstrap.call('ACL', 'SETUSER', 'inspector', 'on', `>${inspectorPassword}`, '~*', '&*', '+@all');
const inspectorOptions = { host: '127.0.0.1', port: server.port, username: 'inspector', password: inspectorPassword, disableClientInfo: true, maxRetriesPerRequest: 3 };
const inspector = new Redis(inspectorOptions);
const inspectorDb1 = new Redis({ ...inspectorOptions, db: 1 });

function floats(n: number, seed: number): Tensor {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed * 1000 + i) * 1e6;
  return new Tensor('float32', [n], data);
}

async function saveWith(redis: Redis, id: string, stateDict: StateDict, prefix = PREFIX): Promise<void> {
  const writer = new RedisStorageWriter({ redis, prefix });
  try {
    await save(stateDict, { checkpointId: id, storageWriter: writer });
  } finally {
    await writer.close();
  }
}

const REFERENCES: Record<(typeof KEEP)[number], StateDict> = {
  'keep/me': { w: floats(257, 1), step: 7, note: 'kept' },
  'keep/two': { w: floats(3, 2), b: floats(5, 3) },
};

// Sentinels outside the namespace, written before the default user is confined.
await saveWith(inspector, 'keep/me', { w: floats(17, 9) }, 'dcpx'); // a real checkpoint of another prefix
await inspector.set('other:key', 'untouchable');
await inspector.set('dcp', 'the bare prefix');
await inspector.hset('dcp-ckpt:{keep/me}:state', 'committedSaveId', 'x');
await inspector.set(':dcp:ckpt:{keep/me}:meta', '{}');
await inspector.zadd('{dcp}:catalog', 1, 'keep/me');
await inspector.set('DCP:catalog', 'case');
await inspector.set('dcp*', 'glob star');
await inspector.set('dcp?', 'glob question');
await inspector.set('dcp[:]x', 'glob class');
await inspector.set('dcp\uFF1Acatalog', 'fullwidth colon');
await inspector.set(Buffer.from('dcp\u0000:catalog'), 'nul');
await inspector.set('dcpdata:keep/me:x:0:0', 'no colon after prefix');
await inspector.set('other:expiring', 'ttl', 'EX', 100_000);
await inspectorDb1.hset('dcp:ckpt:{keep/me}:state', 'committedSaveId', 'db1');
await inspectorDb1.zadd('dcp:catalog', 1, 'keep/me');

await inspector.call('ACL', 'SETUSER', 'default', 'resetkeys', `~${PREFIX}:*`);
for (const id of KEEP) await saveWith(bootstrap, id, REFERENCES[id]);

const authFailureLimit = { max: 1_000_000, timeWindowMs: 60_000 };
const apps: Record<'open' | 'locked', AdminApp> = {
  open: await buildApp({ redis: server.url, adminToken: TOKEN, authFailureLimit }),
  locked: await buildApp({ redis: server.url, adminToken: TOKEN, adminTokenReads: true, authFailureLimit }),
};
const ports: Record<'open' | 'locked', number> = { open: 0, locked: 0 };
for (const name of ['open', 'locked'] as const) {
  await apps[name].listen({ host: '127.0.0.1', port: 0 });
  ports[name] = (apps[name].server.address() as AddressInfo).port;
}
const agent = new Agent({ keepAlive: true, maxSockets: 2 });

t.teardown(async () => {
  agent.destroy();
  for (const app of Object.values(apps)) await app.close();
  inspector.disconnect();
  inspectorDb1.disconnect();
  await server.stop();
});

// ---------------------------------------------------------------------------------------
// HTTP and observation helpers

interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

/** One request over a real socket; undefined when Node refuses to send the path at all. */
function send(port: number, method: string, path: string, headers: Record<string, string>): Promise<Answer | undefined> {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent });
    } catch {
      resolve(undefined); // e.g. characters Node will not put in a request line
      return;
    }
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

type Auth = 'none' | 'token' | 'wrong-same-length' | 'wrong-short' | 'malformed';
const auth = fc.constantFrom<Auth>('none', 'token', 'token', 'wrong-same-length', 'wrong-short', 'malformed');

function authHeaders(a: Auth): Record<string, string> {
  switch (a) {
    case 'none':
      return {};
    case 'token':
      return { authorization: `Bearer ${TOKEN}` };
    case 'wrong-same-length':
      return { authorization: `Bearer ${TOKEN.slice(0, -1)}${TOKEN.endsWith('x') ? 'y' : 'x'}` };
    case 'wrong-short':
      return { authorization: 'Bearer nope' };
    case 'malformed':
      return { authorization: `Basic ${TOKEN}` };
  }
}

/** The error an auth failure must produce, or undefined when the request may proceed. */
function authFailure(needsToken: boolean, a: Auth): [number, string] | undefined {
  if (!needsToken || a === 'token') return undefined;
  return a === 'none' || a === 'malformed' ? [401, 'UNAUTHORIZED'] : [403, 'FORBIDDEN'];
}

async function resetCommandStats(): Promise<void> {
  await inspector.config('RESETSTAT');
}

/** Commands served since the last reset, except the inspector's own INFO and CONFIG. */
async function commandsSinceReset(): Promise<string[]> {
  const stats = await inspector.info('commandstats');
  const out: string[] = [];
  for (const [, name, calls] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (!/^(info|config)\b/.test(name!)) out.push(`${name}x${calls}`);
  }
  return out;
}

async function aclDenials(): Promise<string[]> {
  const log = (await inspector.call('ACL', 'LOG')) as unknown[][];
  return log.map((entry) => JSON.stringify(entry));
}



function diff(before: Snapshot, after: Snapshot, ignore: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (!ignore.has(k) && after.get(k) !== v) out.push(`${after.has(k) ? 'changed' : 'removed'} ${JSON.stringify(unhex(k))}`);
  for (const k of after.keys()) if (!ignore.has(k) && !before.has(k)) out.push(`created ${JSON.stringify(unhex(k))}`);
  return out;
}

const PROBLEM_KEYS = 'code,error,message,statusCode';

/** Checks the shape of any answer: 2xx or 4xx, errors as problem+json; returns the parsed problem. */
function checkShape(answer: Answer): { code: string; message: string } | undefined {
  if (answer.status >= 500 || answer.status < 200) throw new Error(`status ${answer.status}: ${answer.body.slice(0, 300)}`);
  if (answer.status < 400) return undefined;
  if (!answer.type.startsWith('application/problem+json')) throw new Error(`error ${answer.status} with content type ${answer.type}`);
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  if (Object.keys(body).sort().join() !== PROBLEM_KEYS) throw new Error(`problem body has keys ${Object.keys(body).sort().join()}`);
  if (body.statusCode !== answer.status || body.error !== STATUS_CODES[answer.status] || typeof body.code !== 'string' || typeof body.message !== 'string') {
    throw new Error(`problem body does not match the status: ${answer.body.slice(0, 300)}`);
  }
  return { code: body.code, message: body.message };
}

function expectError(answer: Answer, problem: { code: string; message: string } | undefined, status: number, code: string, message?: string): void {
  if (answer.status !== status || problem?.code !== code || (message !== undefined && problem.message !== message)) {
    throw new Error(`expected ${status} ${code}${message ? ` "${message}"` : ''}, got ${answer.status} ${answer.body.slice(0, 300)}`);
  }
}

const initial = await snapshot(inspector);
let baseline = initial;

/** Cursors the server really issued (the second page of a one-item listing), taken before any property runs. */
const issuedCursors: string[] = [];
{
  const first = (await fetchJson(ports.open, '/checkpoints?limit=1')) as { nextCursor: string | null };
  if (first.nextCursor) issuedCursors.push(first.nextCursor);
}

async function fetchJson(port: number, path: string): Promise<unknown> {
  const answer = await send(port, 'GET', path, {});
  if (answer?.status !== 200) throw new Error(`GET ${path}: ${answer?.status} ${answer?.body}`);
  return JSON.parse(answer.body);
}
const baselineDb1 = await snapshot(inspectorDb1);
const FENCE = hexKey(`${PREFIX}:fence`);
const CATALOG = hexKey(`${PREFIX}:catalog`);
const catalogEntries = async () => JSON.stringify(await inspector.zrange(`${PREFIX}:catalog`, '0', '-1', 'WITHSCORES'));
const baselineCatalog = await catalogEntries();
const stats = { requests: 0, unsendable: 0, reachedRedis: 0, created: 0, byStatus: new Map<number, number>() };

/** After each request: nothing outside dcp:* was even attempted, and the keyspace is as expected. */
async function checkRedisAfter(expectCommands: 'none' | 'some' | 'any', mutated = false): Promise<void> {
  const commands = await commandsSinceReset();
  if (expectCommands === 'none' && commands.length > 0) throw new Error(`commands reached Redis: ${commands.join(' ')}`);
  if (expectCommands === 'some' && commands.length === 0) throw new Error('a valid request never reached Redis');
  if (commands.length > 0) stats.reachedRedis++;
  const denied = await aclDenials();
  if (denied.length > 0) {
    await inspector.call('ACL', 'LOG', 'RESET'); // so the next run (and any shrinking) is judged on its own
    throw new Error(`a key outside ${PREFIX}:* was touched: ${denied[0]}`);
  }
  const now = await snapshot(inspector);
  // A delete bumps the fencing counter, and re-encodes the catalog (same members and scores).
  const changes = diff(baseline, now, mutated ? new Set([FENCE, CATALOG]) : new Set());
  if (mutated) {
    const catalog = await catalogEntries();
    if (catalog !== baselineCatalog) changes.push(`catalog holds ${catalog}, not ${baselineCatalog}`);
  }
  baseline = now; // judge the next run (and any shrinking) against what is there now
  if (changes.length > 0) throw new Error(`the keyspace changed: ${changes.slice(0, 5).join('; ')}`);
}

// ---------------------------------------------------------------------------------------
// Properties

type IdRoute = 'get' | 'validate' | 'delete';

const idRequest = fc.record({
  route: fc.constantFrom<IdRoute>('get', 'validate', 'delete'),
  id: anyId,
  encoding,
  auth,
  app: fc.constantFrom<'open' | 'locked'>('open', 'locked'),
  deep: fc.constantFrom<'' | '?deep=true' | '?deep=false'>('', '?deep=true', '?deep=false'),
  create: fc.boolean(),
});

type IdRequest = typeof idRequest extends fc.Arbitrary<infer R> ? R : never;

/** One request to an id route, checked against what the id, encoding and auth call for. */
async function checkIdRequest({ route, id, encoding, auth, app, deep, create }: IdRequest): Promise<void> {
  const method = route === 'get' ? 'GET' : route === 'validate' ? 'POST' : 'DELETE';
  const path = `/checkpoints/${encode(id, encoding)}${route === 'validate' ? `/validate${deep}` : ''}`;
  const needsToken = route !== 'get' || app === 'locked';
  const denied = authFailure(needsToken, auth);
  const tooLong = path.length > MAX_URL_LENGTH;
  const valid = specValid(id);
  // A DELETE that will be honoured: only of a checkpoint this run creates (never the kept ones).
  const willDelete = route === 'delete' && denied === undefined && encoding !== 'raw' && valid && !tooLong;
  if (willDelete && (KEEP as readonly string[]).includes(id)) return;
  if (route === 'delete' && encoding === 'raw' && denied === undefined && /keep/i.test(safeDecode(id))) return; // could name a kept checkpoint
  const created = willDelete && create;
  if (created) {
    await saveWith(bootstrap, id, { w: floats(5, id.length) });
    stats.created++;
    const withCheckpoint = await snapshot(inspector);
    const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const own = new RegExp(`^${PREFIX}:(ckpt:\\{${escaped}\\}:(state|meta|saves|keys:[A-Za-z0-9_-]+)|data:${escaped}:[A-Za-z0-9_-]+:\\d+:\\d+)$`);
    const foreign = diff(baseline, withCheckpoint, new Set([FENCE, CATALOG])).filter((change) => !(change.startsWith('created ') && own.test(JSON.parse(change.slice(8)) as string)));
    if (foreign.length > 0) throw new Error(`saving ${JSON.stringify(id)} touched other keys: ${foreign.slice(0, 5).join('; ')}`);
  }

  await resetCommandStats();
  const answer = await send(ports[app], method, path, authHeaders(auth));
  if (answer === undefined) {
    if (encoding !== 'raw') throw new Error(`could not send an encoded path: ${path.slice(0, 100)}`);
    stats.unsendable++;
    await checkRedisAfter('none');
    return;
  }
  stats.requests++;
  stats.byStatus.set(answer.status, (stats.byStatus.get(answer.status) ?? 0) + 1);
  const problem = checkShape(answer);

  if (encoding === 'raw') {
    // The server decides what the raw bytes mean; whatever it made of them, a lookup
    // happens only for a valid id, and a 400 for a bad id means no command was sent.
    const commands = await commandsSinceReset();
    if (commands.length > 0) {
      const named = answer.status === 200 ? (JSON.parse(answer.body) as { id?: unknown }).id : /^Checkpoint "(.*)" does not exist$/s.exec(problem?.message ?? '')?.[1];
      if (typeof named !== 'string' || !specValid(named)) throw new Error(`raw ${JSON.stringify(path)} reached Redis with answer ${answer.status} ${answer.body.slice(0, 200)}`);
      if (answer.status === 204) throw new Error(`raw ${JSON.stringify(path)} deleted something`);
    }
    if (problem?.code === 'INVALID_CHECKPOINT_ID' && commands.length > 0) throw new Error('an invalid id reached Redis');
    await checkRedisAfter('any');
    return;
  }

  if (tooLong) {
    const ok = answer.status === 414 || answer.status === 431 || (!wellFormed(id) && problem?.code === 'BAD_REQUEST');
    if (!ok) throw new Error(`a ${path.length}-character URL got ${answer.status} ${answer.body.slice(0, 200)}`);
    await checkRedisAfter('none');
    return;
  }
  if (!wellFormed(id)) {
    expectError(answer, problem, 400, 'BAD_REQUEST');
    await checkRedisAfter('none');
    return;
  }
  if (denied) {
    expectError(answer, problem, denied[0], denied[1]);
    await checkRedisAfter('none');
    return;
  }
  if (!valid) {
    const rule = checkpointIdProblem(id);
    if (rule === undefined) throw new Error(`the library accepts ${JSON.stringify(id)}, which breaks the documented rules`);
    expectError(answer, problem, 400, 'INVALID_CHECKPOINT_ID', `Invalid checkpoint id: ${rule}`);
    await checkRedisAfter('none');
    return;
  }
  if (checkpointIdProblem(id) !== undefined) throw new Error(`the library rejects ${JSON.stringify(id)}, which follows the documented rules`);

  const kept = (KEEP as readonly string[]).includes(id);
  if (route === 'delete') {
    if (created) {
      if (answer.status !== 204 || answer.body !== '') throw new Error(`DELETE of a created checkpoint got ${answer.status} ${answer.body.slice(0, 200)}`);
    } else expectError(answer, problem, 404, 'CHECKPOINT_NOT_FOUND', `Checkpoint "${id}" does not exist`);
    await checkRedisAfter('some', created);
    return;
  }
  if (!kept) expectError(answer, problem, 404, 'CHECKPOINT_NOT_FOUND', `Checkpoint "${id}" does not exist`);
  else if (route === 'get') {
    const body = JSON.parse(answer.body) as { id: string; state: string; metadata: unknown };
    if (answer.status !== 200 || body.id !== id || body.state !== 'committed' || body.metadata === null) throw new Error(`GET ${id}: ${answer.status} ${answer.body.slice(0, 200)}`);
  } else if (answer.status !== 200 || answer.body !== '{"ok":true,"problems":[]}') throw new Error(`validate ${id}: ${answer.status} ${answer.body.slice(0, 200)}`);
  await checkRedisAfter('some');
}

t.test('GET, POST validate and DELETE /checkpoints/{id}: only valid ids reach Redis, nothing outside the namespace is touched', async (t) => {
  await fc.assert(fc.asyncProperty(idRequest, checkIdRequest), { seed: SEED, numRuns: 1500 });
  t.ok(stats.requests > 1350, `${stats.requests} requests answered (${stats.unsendable} raw paths Node would not send)`);
  t.ok(stats.reachedRedis > 250 && stats.created > 10, `${stats.reachedRedis} reached Redis, ${stats.created} checkpoints created and deleted`);
  t.ok([200, 204, 400, 401, 403, 404, 414].every((s) => (stats.byStatus.get(s) ?? 0) > 0), `statuses seen: ${JSON.stringify([...stats.byStatus].sort((a, b) => a[0] - b[0]))}`);
});

t.test('DELETE with the token of checkpoints this test creates under valid ids: 204, and exactly their keys go', async (t) => {
  const createdBefore = stats.created;
  const deletion = fc.record({
    route: fc.constant<IdRoute>('delete'),
    id: validId,
    encoding: fc.constantFrom<Encoding>('component', 'every-byte', 'lower-hex'),
    auth: fc.constant<Auth>('token'),
    app: fc.constantFrom<'open' | 'locked'>('open', 'locked'),
    deep: fc.constant<''>(''),
    create: fc.constant(true),
  });
  await fc.assert(fc.asyncProperty(deletion, checkIdRequest), { seed: SEED + 2, numRuns: 80 });
  t.equal(stats.created - createdBefore, 80, '80 created checkpoints deleted through the API, nothing else changed');
});

/** What the catalog holds: the kept checkpoints, newest last. */
const existing: readonly string[] = KEEP;

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** A cursor the catalog would accept: base64url JSON {s: finite number, m: string} (docs: nextCursor is opaque). */
function wellFormedCursor(cursor: string): boolean {
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { s?: unknown; m?: unknown } | null;
    return typeof c === 'object' && c !== null && typeof c.s === 'number' && Number.isFinite(c.s) && typeof c.m === 'string';
  } catch {
    return false;
  }
}

const prefixValue = fc.oneof(
  { arbitrary: anyString, weight: 4 },
  { arbitrary: fc.constantFrom('', 'k', 'keep', 'keep/', 'keep/m', 'keep/me', 'keep/two', 'keep/me/', 'KEEP', 'kee*', 'keep/[mt]', 'keep/?e', 'dcp:', 'other'), weight: 3 },
  { arbitrary: validId, weight: 2 },
);
const cursorValue = fc.oneof(
  { arbitrary: anyString, weight: 3 },
  { arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/), weight: 2 },
  { arbitrary: fc.record({ s: fc.oneof(fc.double(), fc.integer(), fc.constantFrom(1e308, -1e308, 5e-324, Number.MAX_SAFE_INTEGER + 2)), m: anyString }).map((c) => base64url(JSON.stringify(c))), weight: 2 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => base64url(JSON.stringify(v) ?? 'null')), weight: 1 },
  { arbitrary: fc.constantFrom(...issuedCursors, '', 'A'.repeat(2049), base64url('{"s":1,"m":"x","__proto__":{"s":2}}')), weight: 2 },
);
const listRequest = fc.record({
  prefix: fc.option(prefixValue, { nil: undefined }),
  cursor: fc.option(cursorValue, { nil: undefined, freq: 2 }),
  limit: fc.option(fc.constantFrom('1', '2', '50', '1000', '0', '1001', 'ten'), { nil: undefined }),
  state: fc.option(fc.constantFrom('committed', 'incomplete', 'writing', 'lost'), { nil: undefined, freq: 3 }),
  encoding,
  auth,
  app: fc.constantFrom<'open' | 'locked'>('open', 'locked'),
});

t.test('GET /checkpoints?prefix=&cursor=: arbitrary prefixes and cursors never reach Redis unless valid, and only filter', async (t) => {
  const seen = { ok: 0, invalidParameter: 0, invalidCursor: 0, denied: 0, other: 0 };
  await fc.assert(
    fc.asyncProperty(listRequest, async ({ prefix, cursor, limit, state, encoding, auth, app }) => {
      const parts: string[] = [];
      if (prefix !== undefined) parts.push(`prefix=${encode(prefix, encoding)}`);
      if (cursor !== undefined) parts.push(`cursor=${encode(cursor, encoding)}`);
      if (limit !== undefined) parts.push(`limit=${limit}`);
      if (state !== undefined) parts.push(`state=${state}`);
      const path = `/checkpoints${parts.length ? `?${parts.join('&')}` : ''}`;
      await resetCommandStats();
      const answer = await send(ports[app], 'GET', path, authHeaders(auth));
      if (answer === undefined) {
        if (encoding !== 'raw') throw new Error(`could not send an encoded path: ${path.slice(0, 100)}`);
        await checkRedisAfter('none');
        return;
      }
      const problem = checkShape(answer);
      if (answer.status === 200) seen.ok++;
      else if (problem?.code === 'INVALID_PARAMETER') seen.invalidParameter++;
      else if (problem?.code === 'INVALID_CURSOR') seen.invalidCursor++;
      else if (answer.status === 401 || answer.status === 403) seen.denied++;
      else seen.other++;

      if (encoding === 'raw') {
        // Raw query text means whatever the parser makes of it; a 4xx never reaches Redis
        // and a page only ever lists existing, valid ids.
        if (answer.status === 200) {
          const page = JSON.parse(answer.body) as { items: Array<{ id: string }> };
          if (!page.items.every((i) => existing.includes(i.id))) throw new Error(`listed an unknown id: ${answer.body.slice(0, 200)}`);
        }
        await checkRedisAfter(answer.status === 200 ? 'some' : 'none');
        return;
      }

      if (path.length > MAX_URL_LENGTH) {
        if (answer.status !== 414 && answer.status !== 431) throw new Error(`a ${path.length}-character URL got ${answer.status}`);
        await checkRedisAfter('none');
        return;
      }
      const denied = authFailure(app === 'locked', auth);
      if (denied) {
        expectError(answer, problem, denied[0], denied[1]);
        await checkRedisAfter('none');
        return;
      }
      const prefixOk = prefix === undefined || (wellFormed(prefix) && /^[A-Za-z0-9._\-/:]{0,512}$/.test(prefix));
      const cursorOk = cursor === undefined || (wellFormed(cursor) && /^[A-Za-z0-9_-]{0,2048}$/.test(cursor));
      const limitOk = limit === undefined || ['1', '2', '50', '1000'].includes(limit);
      const stateOk = state !== 'lost';
      if (!prefixOk || !cursorOk || !limitOk || !stateOk) {
        expectError(answer, problem, 400, 'INVALID_PARAMETER');
        await checkRedisAfter('none');
        return;
      }
      if (cursor && !wellFormedCursor(cursor)) {
        expectError(answer, problem, 400, 'INVALID_CURSOR', 'cursor is not one this server issued');
        await checkRedisAfter('none');
        return;
      }
      if (answer.status !== 200) throw new Error(`expected a page for ${path.slice(0, 200)}, got ${answer.status} ${answer.body.slice(0, 300)}`);
      const page = JSON.parse(answer.body) as { items: Array<{ id: string; state: string }>; nextCursor: string | null };
      const matching = existing.filter((id) => id.startsWith(prefix ?? '') && (state === undefined || state === 'committed'));
      const ids = page.items.map((i) => i.id);
      if (!ids.every((id) => matching.includes(id)) || new Set(ids).size !== ids.length) throw new Error(`page ${JSON.stringify(ids)} is not a subset of ${JSON.stringify(matching)}`);
      // A full first page has every match; one with room to spare is also the last page.
      if (!cursor && (limit === undefined || Number(limit) >= matching.length)) {
        const last = limit === undefined || Number(limit) > matching.length;
        if (ids.length !== matching.length || (last && page.nextCursor !== null)) throw new Error(`first page ${answer.body.slice(0, 300)} is not all of ${JSON.stringify(matching)}`);
      }
      await checkRedisAfter('some');
    }),
    { seed: SEED + 1, numRuns: 1000 },
  );
  t.ok(seen.ok > 50 && seen.invalidParameter > 50 && seen.invalidCursor > 10 && seen.denied > 20, `answers: ${JSON.stringify(seen)}`);
});

t.test('afterwards: sentinels byte-identical, every key namespaced or a sentinel, committed checkpoints intact', async (t) => {
  t.same(await aclDenials(), [], 'ACL LOG empty: no access outside dcp:* was attempted');
  const now = await snapshot(inspector);
  t.same(diff(baseline, now), [], 'db 0 is exactly as the last check left it');
  t.same(diff(baselineDb1, await snapshot(inspectorDb1)), [], 'db 1 untouched');
  const outside = (snap: Snapshot) => new Map([...snap].filter(([k]) => !unhex(k).startsWith(`${PREFIX}:`)));
  t.same(diff(outside(initial), outside(now)), [], 'every key outside the namespace is a sentinel, each byte-identical to its seeded value (DUMP and TTL)');
  t.ok(outside(initial).size >= 15, `${outside(initial).size} sentinels checked`);
  const namespaced = [...now.keys()].map(unhex).filter((k) => k.startsWith(`${PREFIX}:`));
  t.ok(namespaced.every((k) => /^dcp:(catalog|fence|ckpt:\{keep\/(me|two)\}:(state|meta|saves|keys:[A-Za-z0-9_-]+)|data:keep\/(me|two):[A-Za-z0-9_-]+:\d+:\d+)$/.test(k)), 'only the kept checkpoints remain in the namespace');
  t.same(
    (await inspector.zrange(`${PREFIX}:catalog`, '0', '-1')).sort(),
    [...KEEP].sort(),
    'the catalog lists exactly the kept checkpoints',
  );
  await assertStoreAgrees(t, { redis: bootstrap, expect: { 'keep/me': committed(REFERENCES['keep/me']), 'keep/two': committed(REFERENCES['keep/two']) } });
  t.same(await aclDenials(), [], 'ACL LOG still empty after loading and validating');
});
