/**
 * `npm run soak`: several processes save and load small checkpoints concurrently while the
 * admin API serves reads, validations and deletes, for a bounded time, on a private
 * redis-server (loopback only). Reports operations, errors (must be 0), p50/p99 latencies
 * and memory growth (must be flat). Options: --seconds N (default 180), --workers N (3), --json FILE.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { RedisServer } from '../test/helpers/redis-server.js';
import { buildApp } from '../src/server/app.js';
import { CheckpointCatalog, Tensor, save, RedisStorageWriter } from '../src/index.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '180' }, workers: { type: 'string', default: '3' }, json: { type: 'string' } } });
const seconds = Number(values.seconds);
const workers = Number(values.workers);
if (!(seconds > 0 && seconds <= 3600) || !(workers >= 1 && workers <= 16)) throw new Error('--seconds must be 1-3600 and --workers 1-16');
const root = fileURLToPath(new URL('../', import.meta.url));

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const server = await RedisServer.start({ args: ['--maxmemory-policy', 'noeviction'] });
const redis = server.client();
const app = await buildApp({ redis });
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.stderr.write(`soak: ${workers} workers × ${seconds} s on redis ${server.url}, API ${address}\n`);

const children = Array.from({ length: workers }, (_, i) =>
  new Promise<Record<string, unknown>>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/soak-worker.ts', server.url, String(i), String(seconds)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>) : reject(new Error(`worker ${i} exited with ${code}`))));
  }),
);

// API traffic in this process, bounded by the same deadline.
const api = { requests: 0, errors: 0, unexpected: [] as string[], listMs: [] as number[], getMs: [] as number[], validateMs: [] as number[], deleteMs: [] as number[] };
const catalog = new CheckpointCatalog({ redis });
const deadline = Date.now() + seconds * 1000;
const warmAt = Date.now() + (seconds * 1000) / 3; // memory is compared from here on, after warm-up
let usedStart = 0;
let apiRssStart = 0;
async function call(method: string, path: string, ok: number[], bucket: number[]): Promise<unknown> {
  const t0 = performance.now();
  const res = await fetch(`${address}${path}`, { method });
  bucket.push(performance.now() - t0);
  api.requests++;
  const body: unknown = res.status === 204 ? null : await res.json();
  if (!ok.includes(res.status)) {
    api.errors++;
    if (api.unexpected.length < 5) api.unexpected.push(`${method} ${path} → ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
  }
  return body;
}
for (let round = 0; Date.now() < deadline; round++) {
  const page = (await call('GET', '/checkpoints?limit=50', [200], api.listMs)) as { items?: Array<{ id: string }> };
  const some = page.items?.[round % Math.max(1, page.items.length)];
  if (some) {
    const enc = encodeURIComponent(some.id);
    await call('GET', `/checkpoints/${enc}`, [200, 404], api.getMs); // 404: deleted meanwhile
    await call('POST', `/checkpoints/${enc}/validate?deep=${round % 5 === 0}`, [200, 404], api.validateMs);
  }
  if (round % 10 === 0) {
    // The API deletes only checkpoints it made itself.
    const id = `soak/api/${round}`;
    await save({ x: new Tensor('int32', [16], new Int32Array(16).fill(round)) }, { checkpointId: id, storageWriter: new RedisStorageWriter({ redis }) });
    await call('DELETE', `/checkpoints/${encodeURIComponent(id)}`, [204], api.deleteMs);
  }
  if (apiRssStart === 0 && Date.now() >= warmAt) {
    apiRssStart = process.memoryUsage().rss;
    usedStart = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
  }
}
const results = await Promise.all(children);
const usedEnd = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
const finalState = await catalog.list({ limit: 1000 });
const notCommitted = finalState.items.filter((i) => i.state !== 'committed');
const deepProblems = (await Promise.all(finalState.items.map((i) => catalog.validate(i.id, { deep: true })))).filter((r) => !r.ok).length;

const saveMs = results.flatMap((r) => r.saveMs as number[]);
const loadMs = results.flatMap((r) => r.loadMs as number[]);
const report = {
  seconds,
  workers,
  library: {
    ops: results.reduce((a, r) => a + (r.ops as number), 0),
    errors: results.reduce((a, r) => a + (r.errors as number), 0),
    first_errors: results.flatMap((r) => r.firstErrors as string[]),
    save_p50_ms: pct(saveMs, 50), save_p99_ms: pct(saveMs, 99),
    load_p50_ms: pct(loadMs, 50), load_p99_ms: pct(loadMs, 99),
    worker_rss_growth_mib: results.map((r) => ((r.rssEnd as number) - (r.rssStart as number)) / 2 ** 20),
  },
  api: {
    requests: api.requests, errors: api.errors, unexpected: api.unexpected,
    list_p50_ms: pct(api.listMs, 50), list_p99_ms: pct(api.listMs, 99),
    get_p99_ms: pct(api.getMs, 99), validate_p99_ms: pct(api.validateMs, 99), delete_p99_ms: pct(api.deleteMs, 99),
    server_rss_growth_mib: (process.memoryUsage().rss - apiRssStart) / 2 ** 20,
  },
  redis_used_memory_growth_mib: (usedEnd - usedStart) / 2 ** 20,
  final_checkpoints: finalState.items.length,
  final_not_committed: notCommitted.map((i) => `${i.id}:${i.state}`),
  final_deep_validation_failures: deepProblems,
};
console.log(JSON.stringify(report, null, 2));
if (values.json) writeFileSync(values.json, JSON.stringify(report, null, 2));
await catalog.close();
await app.close();
await server.stop();
const failed = report.library.errors + report.api.errors + deepProblems + notCommitted.length;
process.exit(failed === 0 ? 0 : 1);
