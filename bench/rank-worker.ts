/**
 * One rank of a benchmark save or load, run as its own process by bench/ranks.ts:
 *   node --import tsx bench/rank-worker.ts '<WorkerTask JSON>'
 * Ranks meet through RedisProcessGroup; each times itself from the barrier before
 * the operation to its completion, and prints one `RESULT {json}` line on stdout.
 * Peak RSS is the whole process's high-water mark (VmHWM), so one process runs one
 * measured operation.
 */
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { save } from '../src/core/save.js';
import { load } from '../src/core/load.js';
import { RedisProcessGroup } from '../src/group/redis-process-group.js';
import { RedisStorageWriter } from '../src/redis/writer.js';
import { RedisStorageReader } from '../src/redis/reader.js';
import { CheckpointCatalog } from '../src/redis/catalog.js';
import { deleteRaw, rawGet, rawSet, usedMemory, type RawOptions } from './baselines.js';
import { RespBulkSocket, socketGet, socketSet } from './resp-socket.js';
import { makeLayout, makePayload, makeRankStateDict, verifyRankStateDict, wipeForLoad, type LayoutOptions, type Verification } from './synthetic.js';
import { TimedStorageReader, TimedStorageWriter } from './timed-storage.js';
import { runAsyncRank, type AsyncRankFigures } from './async-save.js';

export interface WorkerTask {
  /**
   * save/load: the library through RedisProcessGroup (load with warmLoad: its second load in
   * the process, see below). raw-set/raw-get: the raw ioredis
   * baseline in the same kind of fresh process (world size 1), so both sides start
   * with the same Node heap; raw-get-warm: the raw GET in a long-lived process (it lays out
   * its own keys, reads them once unmeasured, then measures the second read, as a trainer
   * whose tensors and allocator are warm); idle: only what a worker costs before any work;
   * save-loop: saves checkpointId over and over (overwrite) until its stdin closes, printing
   * SAVING when the first measured save starts (a save running beside the admin API measurement;
   * a recycling loop saves once before, so that every measured save writes over pooled segments).
   */
  readonly mode: 'save' | 'load' | 'raw-set' | 'raw-get' | 'raw-get-warm' | 'idle' | 'async-save' | 'save-loop';
  readonly redisUrl: string;
  readonly prefix: string;
  readonly groupId: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly layout: LayoutOptions;
  readonly checkpointId: string;
  /** Steady state: save this checkpoint first and delete it, then measure the save of checkpointId. */
  readonly warmupCheckpointId?: string;
  /**
   * load: first load the checkpoint once unmeasured, wipe the tensors (wipeForLoad) and measure
   * the second load: the library in a warm process, like the raw-get-warm baseline.
   */
  readonly warmLoad?: boolean;
  /** Segment recycling for the save, its warmup and the warmup's delete (0/absent: off). */
  readonly recycleTtlMs?: number;
  /** async-save: paired rounds of (sync save, upload beside a busy main thread) (default 1). */
  readonly rounds?: number;
  /** save-loop: the writer's maxBytesPerSecond (absent: no limit). */
  readonly maxBytesPerSecond?: number;
  readonly timeoutMs: number;
  /** raw-*: the chunking and concurrency for SET and for GET (raw-set lays keys out for GET after measuring). */
  readonly raw?: {
    readonly setChunkBytes: number;
    readonly setConcurrency: number;
    readonly getChunkBytes: number;
    readonly getConcurrency: number;
    readonly keyPrefix: string;
    /** ioredis (the client of record) or a zero-copy RESP socket (what a bulk transport could reach). */
    readonly transport: 'ioredis' | 'socket';
  };
}

export interface WorkerResult {
  readonly rank: number;
  /** Wall clock (ms since the epoch, sub-ms precision) after the barrier and at completion. */
  readonly startEpochMs: number;
  readonly endEpochMs: number;
  /** Bytes of this rank's state dict (its shards plus the replicated items). */
  readonly rankBytes: number;
  readonly peakRssBytes: number;
  /** Milliseconds per storage step (setUp, prepareLocalPlan, writeData, finish, readData...). */
  readonly steps: Record<string, number>;
  /** Milliseconds from the barrier to the first data write/read (planning and collectives). */
  readonly beforeDataMs: number | undefined;
  readonly verification?: Verification;
  /** raw-set: Redis used_memory growth of the measured SET alone. */
  readonly memoryGrowthBytes?: number;
  /** async-save: the figures of bench/async-save.ts. */
  readonly async?: AsyncRankFigures;
}

const epochNow = () => performance.timeOrigin + performance.now();

function connect(url: string): Redis {
  const client = new Redis(url, { disableClientInfo: true, maxRetriesPerRequest: 3 });
  client.on('error', () => {});
  return client;
}

async function run(task: WorkerTask): Promise<WorkerResult> {
  if (task.mode === 'raw-get-warm') return runRawGetWarm(task);
  if (task.mode === 'raw-set' || task.mode === 'raw-get') return runRaw(task);
  const redis = connect(task.redisUrl);
  const groupRedis = connect(task.redisUrl);
  const group = new RedisProcessGroup({ redis: groupRedis, groupId: task.groupId, rank: task.rank, worldSize: task.worldSize, timeoutMs: task.timeoutMs, prefix: task.prefix });
  const layout = makeLayout(task.layout);
  try {
    if (task.mode === 'idle') {
      await group.barrier();
      return { rank: task.rank, startEpochMs: epochNow(), endEpochMs: epochNow(), rankBytes: 0, peakRssBytes: peakRss(), steps: {}, beforeDataMs: undefined };
    }
    const { stateDict, bytes } = makeRankStateDict(layout, task.worldSize, task.rank, task.mode !== 'load');
    if (task.mode === 'async-save') {
      const startEpochMs = epochNow();
      const figures = await runAsyncRank(stateDict, redis, group, task.prefix, task.checkpointId, task.rounds ?? 1);
      return { rank: task.rank, startEpochMs, endEpochMs: epochNow(), rankBytes: bytes, peakRssBytes: peakRss(), steps: {}, beforeDataMs: undefined, async: figures };
    }

    if (task.mode === 'save-loop') {
      let stop = false;
      process.stdin.on('close', () => (stop = true)).on('end', () => (stop = true)).resume();
      // recycleTtlMs: each save takes the segments the one before it dropped (writes over memory Redis holds).
      const saveOnce = () => save(stateDict, { storageWriter: new RedisStorageWriter({ redis, prefix: task.prefix, overwrite: true, recycleTtlMs: task.recycleTtlMs ?? 0, ...(task.maxBytesPerSecond !== undefined ? { maxBytesPerSecond: task.maxBytesPerSecond } : {}) }), checkpointId: task.checkpointId });
      // A recycling loop pools the checkpoint's segments with one save first, so that every save measured writes over pooled ones.
      if ((task.recycleTtlMs ?? 0) > 0) await saveOnce();
      const startEpochMs = epochNow();
      let saves = 0;
      process.stdout.write('SAVING\n');
      while (!stop) {
        await saveOnce();
        saves++;
      }
      return { rank: task.rank, startEpochMs, endEpochMs: epochNow(), rankBytes: bytes * saves, peakRssBytes: peakRss(), steps: {}, beforeDataMs: undefined };
    }
    if (task.mode === 'save') {
      const recycleTtlMs = task.recycleTtlMs ?? 0;
      if (task.warmupCheckpointId !== undefined) {
        await save(stateDict, { storageWriter: new RedisStorageWriter({ redis, prefix: task.prefix, overwrite: true, recycleTtlMs }), checkpointId: task.warmupCheckpointId, processGroup: group });
        if (task.rank === 0) await new CheckpointCatalog({ redis, prefix: task.prefix, recycleTtlMs }).delete(task.warmupCheckpointId);
      }
      const writer = new TimedStorageWriter(new RedisStorageWriter({ redis, prefix: task.prefix, overwrite: true, recycleTtlMs }));
      await group.barrier();
      const startEpochMs = epochNow();
      const t0 = performance.now();
      await save(stateDict, { storageWriter: writer, checkpointId: task.checkpointId, processGroup: group });
      const endEpochMs = epochNow();
      return { rank: task.rank, startEpochMs, endEpochMs, rankBytes: bytes, peakRssBytes: peakRss(), steps: writer.times.ms, beforeDataMs: writer.times.startOf('writeData', t0) };
    }

    if (task.warmLoad) {
      await load(stateDict, { storageReader: new RedisStorageReader({ redis, prefix: task.prefix }), checkpointId: task.checkpointId, processGroup: group });
      wipeForLoad(stateDict);
    }
    const reader = new TimedStorageReader(new RedisStorageReader({ redis, prefix: task.prefix }));
    await group.barrier();
    const startEpochMs = epochNow();
    const t0 = performance.now();
    await load(stateDict, { storageReader: reader, checkpointId: task.checkpointId, processGroup: group });
    const endEpochMs = epochNow();
    const verification = verifyRankStateDict(layout, stateDict, task.worldSize, task.rank);
    return { rank: task.rank, startEpochMs, endEpochMs, rankBytes: bytes, peakRssBytes: peakRss(), steps: reader.times.ms, beforeDataMs: reader.times.startOf('readData', t0), verification };
  } finally {
    await closeQuietly(group);
    redis.disconnect();
    groupRedis.disconnect();
  }
}

/** Raw SET (steady: SET A, DEL A, then SET B measured) or raw GET into pre-touched memory, verified. */
async function runRaw(task: WorkerTask): Promise<WorkerResult> {
  const raw = task.raw!;
  const redis = connect(task.redisUrl);
  const sock = raw.transport === 'socket' ? await RespBulkSocket.connect(task.redisUrl) : undefined;
  const setBytes = (payload: Uint8Array, opts: RawOptions) => (sock ? socketSet(sock, payload, opts) : rawSet(redis, payload, opts));
  try {
    const bytes = makeLayout(task.layout).totalBytes;
    const payload = makePayload(bytes);
    const setOpts = { chunkBytes: raw.setChunkBytes, concurrency: raw.setConcurrency };
    const chunks = (chunkBytes: number) => Math.ceil(bytes / chunkBytes);
    if (task.mode === 'raw-set') {
      if (task.warmupCheckpointId !== undefined) {
        await setBytes(payload, { ...setOpts, keyPrefix: `${raw.keyPrefix}:warm` });
        await deleteRaw(redis, `${raw.keyPrefix}:warm`, chunks(raw.setChunkBytes));
      }
      const before = await usedMemory(redis);
      const startEpochMs = epochNow();
      await setBytes(payload, { ...setOpts, keyPrefix: raw.keyPrefix });
      const endEpochMs = epochNow();
      const peakRssBytes = peakRss();
      const memoryGrowthBytes = (await usedMemory(redis)) - before;
      if (raw.getChunkBytes !== raw.setChunkBytes) {
        // Lay the bytes out as GET reads them (not measured).
        await deleteRaw(redis, raw.keyPrefix, chunks(raw.setChunkBytes));
        await rawSet(redis, payload, { chunkBytes: raw.getChunkBytes, concurrency: raw.setConcurrency, keyPrefix: raw.keyPrefix });
      }
      return { rank: 0, startEpochMs, endEpochMs, rankBytes: bytes, peakRssBytes, steps: {}, beforeDataMs: undefined, memoryGrowthBytes };
    }
    const dest = new Uint8Array(bytes).fill(0xff);
    const startEpochMs = epochNow();
    const getOpts = { chunkBytes: raw.getChunkBytes, concurrency: raw.getConcurrency, keyPrefix: raw.keyPrefix };
    await (sock ? socketGet(sock, dest, getOpts) : rawGet(redis, dest, getOpts));
    const endEpochMs = epochNow();
    const peakRssBytes = peakRss();
    const same = Buffer.compare(Buffer.from(dest.buffer, 0, bytes), Buffer.from(payload.buffer, 0, bytes)) === 0;
    const verification = { verifiedBytes: same ? bytes : 0, mismatchedWords: same ? 0 : 1, problems: same ? [] : ['raw GET bytes differ from what was SET'] };
    return { rank: 0, startEpochMs, endEpochMs, rankBytes: bytes, peakRssBytes, steps: {}, beforeDataMs: undefined, verification };
  } finally {
    sock?.close();
    redis.disconnect();
  }
}

/**
 * Raw ioredis GET in a warm, long-lived process: SET the bytes at the GET chunking (not
 * measured), GET them once into the destination (not measured: the allocator, V8 and the
 * destination have now seen every reply), then the measured GET, verified; then DEL.
 */
async function runRawGetWarm(task: WorkerTask): Promise<WorkerResult> {
  const raw = task.raw!;
  const redis = connect(task.redisUrl);
  try {
    const bytes = makeLayout(task.layout).totalBytes;
    const payload = makePayload(bytes);
    const opts = { chunkBytes: raw.getChunkBytes, concurrency: raw.getConcurrency, keyPrefix: `${raw.keyPrefix}:warm-get` };
    await rawSet(redis, payload, { ...opts, concurrency: raw.setConcurrency });
    const dest = new Uint8Array(bytes);
    await rawGet(redis, dest, opts);
    dest.fill(0xff);
    const startEpochMs = epochNow();
    await rawGet(redis, dest, opts);
    const endEpochMs = epochNow();
    const same = Buffer.compare(Buffer.from(dest.buffer, 0, bytes), Buffer.from(payload.buffer, 0, bytes)) === 0;
    const verification = { verifiedBytes: same ? bytes : 0, mismatchedWords: same ? 0 : 1, problems: same ? [] : ['warm raw GET bytes differ from what was SET'] };
    await deleteRaw(redis, opts.keyPrefix, Math.ceil(bytes / opts.chunkBytes));
    return { rank: 0, startEpochMs, endEpochMs, rankBytes: bytes, peakRssBytes: peakRss(), steps: {}, beforeDataMs: undefined, verification };
  } finally {
    redis.disconnect();
  }
}

/**
 * Peak RSS of this process: VmHWM of /proc/self/status. Not resourceUsage().maxRSS:
 * on Linux a spawned child's ru_maxrss starts from its parent's RSS at fork (exec keeps
 * the old mm's high-water mark), so a worker forked from a 2 GiB orchestrator would
 * report at least 2 GiB. VmHWM belongs to the mm that exec created.
 */
function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS * 1024;
}

async function closeQuietly(group: object): Promise<void> {
  const close = (group as { close?: () => unknown }).close;
  if (typeof close === 'function') {
    try {
      await close.call(group);
    } catch {
      // the measurement is done; a failing close must not hide it
    }
  }
}

const task = JSON.parse(process.argv[2] ?? '{}') as WorkerTask;
run(task).then(
  (result) => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`rank ${task.rank}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
