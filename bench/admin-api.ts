/**
 * Admin API figures: with `entries` real checkpoints in the catalog (saved by the
 * library), the latency of 100-item pages of GET /checkpoints and the request rate
 * of GET /checkpoints/{id}. Loopback only, bounded in count and duration.
 */
import { Agent, get } from 'node:http';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { save } from '../src/core/save.js';
import { Tensor } from '../src/core/tensor.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { buildApp } from '../src/server/app.js';
import { boundedAll, type OnProgress } from './baselines.js';

export interface ApiFigures {
  readonly catalogEntries: number;
  readonly listPageRequests: number;
  readonly listPageP50Ms: number;
  readonly listPageP99Ms: number;
  /** Items in each measured page (to show they were full pages). */
  readonly listPageItems: number;
  readonly getRps: number;
  readonly getP50Ms: number;
  readonly getP99Ms: number;
  /** Non-2xx answers and errors during the autocannon run (should be 0). */
  readonly getNon2xx: number;
  readonly getErrors: number;
  /**
   * The same page walk while another process saves a checkpoint over and over, each save
   * writing new keys (fresh Redis memory: page faults in redis-server); absent when not measured.
   */
  readonly beside?: BesideFigures;
  /** The same beside saves that recycle dropped segments (recycleTtlMs, the CheckpointManager's default): Redis writes over memory it holds. */
  readonly besideRecycling?: BesideFigures;
  /** The same beside saves into new keys paced by the writer's maxBytesPerSecond (its value in `maxBytesPerSecond`). */
  readonly besidePaced?: BesideFigures & { readonly maxBytesPerSecond: number };
}

export interface BesideFigures {
  readonly listPageP50Ms: number;
  readonly listPageP99Ms: number;
  readonly listPageRequests: number;
  /** Bytes of the state dict each save beside writes, and the GB/s of the loop's saves (its own clock, over the saves it completed). */
  readonly saveBytes: number;
  readonly saveGbps: number;
  /** Redis PING round trips from another process during the walk: the server's own latency, a floor under any page. */
  readonly pingP50Ms: number;
  readonly pingP99Ms: number;
}

/** A save loop in another process (bench/ranks.ts startSaveLoop), started once the quiet figures are taken. */
export interface SaveBeside {
  readonly bytes: number;
  start(): Promise<{ stop(): Promise<{ bytes: number; seconds: number }> }>;
}

const PAGE_REQUESTS = 300;
const WARMUP_REQUESTS = 30;

/** Saves `count` tiny checkpoints named `api/ckpt-<i>` (several in flight). */
export async function fillCatalog(redis: Redis, prefix: string, count: number, onProgress?: OnProgress): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `api/ckpt-${String(i).padStart(6, '0')}`);
  let done = 0;
  await boundedAll(count, 8, async (i) => {
    const sd = { w: new Tensor('float32', [4], Float32Array.from([i, 1, 2, 3])), step: i };
    await save(sd, { storageWriter: new RedisStorageWriter({ redis, prefix, overwrite: true }), checkpointId: ids[i]! });
    onProgress?.(++done, count);
  });
  return ids;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * GET `url` on a kept-alive connection and parse the JSON body. node:http, not fetch: the client
 * runs in the API's own process, and fetch's streams cost ~0.7 ms of its CPU per page (Session 7).
 */
function getJson(url: string, agent: Agent): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** `count` sequential GET /checkpoints?limit=100, walking the cursor through every page (and starting over at the end). */
async function walkPages(address: string, count: number, warmup: number): Promise<{ latencies: number[]; pageItems: number }> {
  const latencies: number[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let cursor: string | null = null;
  let pageItems = 0;
  try {
    for (let i = 0; i < warmup + count; i++) {
      const url = `${address}/checkpoints?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const t0 = performance.now();
      const res = await getJson(url, agent);
      const ms = performance.now() - t0;
      const body = res.body as { items?: unknown[]; nextCursor?: string | null };
      if (res.status !== 200 || !Array.isArray(body.items)) throw new Error(`GET /checkpoints answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
      if (i >= warmup) {
        latencies.push(ms);
        pageItems = Math.max(pageItems, body.items.length);
      }
      // Walk the pages, starting over at the end, so deep pages are measured too.
      cursor = body.nextCursor ?? null;
    }
  } finally {
    agent.destroy();
  }
  latencies.sort((a, b) => a - b);
  return { latencies, pageItems };
}

/** The page walk while `beside` saves over and over in another process, with Redis' own PING latency meanwhile. */
async function walkBeside(address: string, beside: SaveBeside, pinger: PingLoop): Promise<BesideFigures> {
  const loop = await beside.start();
  const pinging = await pinger.start();
  const walked = await walkPages(address, PAGE_REQUESTS, 0).catch(async (err: unknown) => {
    await Promise.allSettled([pinging.stop(), loop.stop()]);
    throw err;
  });
  const pings = (await pinging.stop()).sort((a, b) => a - b);
  // The loop's own pace: the saves it completed over its own clock (the walk saw part of them).
  const saved = await loop.stop();
  return { listPageP50Ms: percentile(walked.latencies, 50), listPageP99Ms: percentile(walked.latencies, 99), listPageRequests: walked.latencies.length, saveBytes: beside.bytes, saveGbps: saved.bytes / saved.seconds / 1e9, pingP50Ms: percentile(pings, 50), pingP99Ms: percentile(pings, 99) };
}

/** The saves beside the page walk: each writing new keys, and each recycling the segments of the one before. */
export interface SavesBeside {
  readonly plain?: SaveBeside;
  readonly recycling?: SaveBeside;
  readonly paced?: SaveBeside & { readonly maxBytesPerSecond: number };
}

/** Starts Redis PINGs from another process (bench/ranks.ts startPingLoop). */
export interface PingLoop {
  start(): Promise<{ stop(): Promise<number[]> }>;
}

export async function measureAdminApi(redis: Redis, prefix: string, ids: readonly string[], seconds: number, besides: SavesBeside = {}, pinger?: PingLoop): Promise<ApiFigures> {
  const app = await buildApp({ redis, prefix });
  try {
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const { latencies, pageItems } = await walkPages(address, PAGE_REQUESTS, WARMUP_REQUESTS);
    const besideFigures = besides.plain && pinger ? await walkBeside(address, besides.plain, pinger) : undefined;
    const recyclingFigures = besides.recycling && pinger ? await walkBeside(address, besides.recycling, pinger) : undefined;
    const pacedFigures = besides.paced && pinger ? { ...(await walkBeside(address, besides.paced, pinger)), maxBytesPerSecond: besides.paced.maxBytesPerSecond } : undefined;

    const target = ids[Math.floor(ids.length / 2)]!;
    const probe = await fetch(`${address}/checkpoints/${encodeURIComponent(target)}`);
    if (!probe.ok) throw new Error(`GET /checkpoints/{id} answered ${probe.status}`);
    await probe.arrayBuffer();
    const result = await autocannon({ url: `${address}/checkpoints/${encodeURIComponent(target)}`, connections: 8, duration: seconds });
    return {
      catalogEntries: ids.length,
      listPageRequests: latencies.length,
      listPageP50Ms: percentile(latencies, 50),
      listPageP99Ms: percentile(latencies, 99),
      listPageItems: pageItems,
      getRps: result.requests.average,
      getP50Ms: result.latency.p50,
      getP99Ms: result.latency.p99,
      getNon2xx: result.non2xx,
      getErrors: result.errors + result.timeouts,
      ...(besideFigures ? { beside: besideFigures } : {}),
      ...(recyclingFigures ? { besideRecycling: recyclingFigures } : {}),
      ...(pacedFigures ? { besidePaced: pacedFigures } : {}),
    };
  } finally {
    await app.close();
  }
}
