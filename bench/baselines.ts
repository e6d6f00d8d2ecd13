/**
 * Baselines for the benchmark: the fastest plain ways to move the same bytes, measured
 * in the same run as redis-dcp, under the same memory condition (cold or steady).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';

const execFileAsync = promisify(execFile);

export interface Throughput {
  readonly bytes: number;
  readonly seconds: number;
  readonly gbps: number;
}

export function throughput(bytes: number, seconds: number): Throughput {
  return { bytes, seconds, gbps: bytes / seconds / 1e9 };
}

/** Called after each finished unit of work (bytes moved so far, total). */
export type OnProgress = (done: number, total: number) => void;

/** Runs `tasks` with at most `limit` in flight. */
export async function boundedAll(count: number, limit: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

export interface RawOptions {
  readonly chunkBytes: number;
  readonly concurrency: number;
  readonly keyPrefix: string;
  readonly onProgress?: OnProgress;
}

/** SET `payload` split into chunkBytes-sized views (no copies), `concurrency` in flight. */
export async function rawSet(redis: Redis, payload: Uint8Array, opts: RawOptions): Promise<Throughput> {
  const n = Math.ceil(payload.byteLength / opts.chunkBytes);
  const t0 = performance.now();
  await boundedAll(n, opts.concurrency, async (i) => {
    const start = i * opts.chunkBytes;
    const view = Buffer.from(payload.buffer, payload.byteOffset + start, Math.min(opts.chunkBytes, payload.byteLength - start));
    await redis.set(`${opts.keyPrefix}:${i}`, view);
    opts.onProgress?.(Math.min((i + 1) * opts.chunkBytes, payload.byteLength), payload.byteLength);
  });
  return throughput(payload.byteLength, (performance.now() - t0) / 1000);
}

/** GET every chunk back with getBuffer into `dest`. */
export async function rawGet(redis: Redis, dest: Uint8Array, opts: RawOptions): Promise<Throughput> {
  const n = Math.ceil(dest.byteLength / opts.chunkBytes);
  const t0 = performance.now();
  await boundedAll(n, opts.concurrency, async (i) => {
    const buf = await redis.getBuffer(`${opts.keyPrefix}:${i}`);
    if (!buf) throw new Error(`raw GET: key ${opts.keyPrefix}:${i} is missing`);
    dest.set(buf, i * opts.chunkBytes);
    opts.onProgress?.(Math.min((i + 1) * opts.chunkBytes, dest.byteLength), dest.byteLength);
  });
  return throughput(dest.byteLength, (performance.now() - t0) / 1000);
}

export async function deleteRaw(redis: Redis, keyPrefix: string, chunks: number): Promise<void> {
  for (let i = 0; i < chunks; i += 1000) {
    const keys = Array.from({ length: Math.min(1000, chunks - i) }, (_, j) => `${keyPrefix}:${i + j}`);
    await redis.unlink(...keys);
  }
}

/** Writes `payload` as files of `fileBytes` into `dir`, as DCP's FileSystemWriter would; `fsync` as its sync_files. */
export async function fsWrite(dir: string, payload: Uint8Array, opts: { fileBytes?: number; fsync?: boolean; onProgress?: OnProgress } = {}): Promise<Throughput> {
  const fileBytes = opts.fileBytes ?? 64 << 20;
  const n = Math.ceil(payload.byteLength / fileBytes);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const fh = await open(join(dir, `${i}.distcp`), 'w');
    try {
      const start = i * fileBytes;
      await fh.write(payload, start, Math.min(fileBytes, payload.byteLength - start));
      if (opts.fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    opts.onProgress?.(Math.min((i + 1) * fileBytes, payload.byteLength), payload.byteLength);
  }
  return throughput(payload.byteLength, (performance.now() - t0) / 1000);
}

/** Reads the files of fsWrite back into `dest` (memory the caller already holds, like live tensors). */
export async function fsRead(dir: string, dest: Uint8Array, opts: { fileBytes?: number; onProgress?: OnProgress } = {}): Promise<Throughput> {
  const fileBytes = opts.fileBytes ?? 64 << 20;
  const n = Math.ceil(dest.byteLength / fileBytes);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const fh = await open(join(dir, `${i}.distcp`), 'r');
    try {
      const start = i * fileBytes;
      const want = Math.min(fileBytes, dest.byteLength - start);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(dest, start + got, want - got, got);
        if (bytesRead === 0) throw new Error(`fs read: ${i}.distcp is short`);
        got += bytesRead;
      }
    } finally {
      await fh.close();
    }
    opts.onProgress?.(Math.min((i + 1) * fileBytes, dest.byteLength), dest.byteLength);
  }
  return throughput(dest.byteLength, (performance.now() - t0) / 1000);
}

export async function makeFsDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'redis-dcp-bench-'));
}

export async function removeFsDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

/** Writes and reads the same bytes as files in a fresh temp dir. */
export async function fsRoundTrip(payload: Uint8Array, fileBytes = 64 << 20): Promise<{ write: Throughput; read: Throughput }> {
  const dir = await makeFsDir();
  try {
    const write = await fsWrite(dir, payload, { fileBytes });
    const read = await fsRead(dir, payload, { fileBytes });
    return { write, read };
  } finally {
    await removeFsDir(dir);
  }
}

export interface SweepPoint {
  readonly chunkBytes: number;
  readonly concurrency: number;
  readonly setGbps: number;
  readonly getGbps: number;
}

/**
 * Tries each chunk size × concurrency on `sample` (SET, GET, DEL each time, so every
 * SET lands in memory the previous DEL freed: the steady condition). The caller
 * should have filled and deleted `sample` once before, so the first point is steady too.
 */
export async function sweepRaw(redis: Redis, sample: Uint8Array, chunkSizes: readonly number[], concurrencies: readonly number[], keyPrefix: string, onPoint?: (done: number, total: number) => void): Promise<SweepPoint[]> {
  const points: SweepPoint[] = [];
  const dest = new Uint8Array(sample.byteLength);
  const total = chunkSizes.length * concurrencies.length;
  for (const chunkBytes of chunkSizes) {
    for (const concurrency of concurrencies) {
      const opts = { chunkBytes, concurrency, keyPrefix: `${keyPrefix}:c${chunkBytes}x${concurrency}` };
      const set = await rawSet(redis, sample, opts);
      const get = await rawGet(redis, dest, opts);
      await deleteRaw(redis, opts.keyPrefix, Math.ceil(sample.byteLength / chunkBytes));
      points.push({ chunkBytes, concurrency, setGbps: set.gbps, getGbps: get.gbps });
      onPoint?.(points.length, total);
    }
  }
  return points;
}

export function bestBy(points: readonly SweepPoint[], key: 'setGbps' | 'getGbps'): SweepPoint {
  return points.reduce((a, b) => (b[key] > a[key] ? b : a));
}

/** `used_memory` from INFO memory. */
export async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  const m = /^used_memory:(\d+)/m.exec(info);
  if (!m) throw new Error('INFO memory has no used_memory');
  return Number(m[1]);
}

/**
 * The loopback socket's ceiling in this process: `payload` written in `chunkBytes`
 * pieces to a server that only counts bytes (what a transport with no parsing and
 * no copies could reach).
 */
export async function loopbackSocket(payload: Uint8Array, chunkBytes = 1 << 20): Promise<Throughput> {
  const { createServer, connect } = await import('node:net');
  let received = 0;
  let onAll: () => void = () => {};
  const all = new Promise<void>((resolve) => (onAll = resolve));
  const server = createServer((sock) => {
    sock.on('data', (d: Buffer) => {
      received += d.byteLength;
      if (received >= payload.byteLength) onAll();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const client = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  const t0 = performance.now();
  for (let off = 0; off < payload.byteLength; off += chunkBytes) {
    const view = payload.subarray(off, Math.min(off + chunkBytes, payload.byteLength));
    if (!client.write(view)) await new Promise((resolve) => client.once('drain', resolve));
  }
  await all;
  const result = throughput(payload.byteLength, (performance.now() - t0) / 1000);
  client.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return result;
}

/** The server's own ceiling with a C client, when redis-benchmark is installed. */
export async function redisBenchmark(port: number, valueBytes: number, requests: number): Promise<{ setGbps: number; getGbps: number } | undefined> {
  try {
    const { stdout } = await execFileAsync('redis-benchmark', ['-p', String(port), '-t', 'set,get', '-d', String(valueBytes), '-n', String(requests), '-c', '4', '-r', String(requests), '-q'], { maxBuffer: 1 << 20 });
    const rps = (name: string) => Number(new RegExp(`${name}: ([\\d.]+) requests per second`).exec(stdout)?.[1] ?? NaN);
    return { setGbps: (rps('SET') * valueBytes) / 1e9, getGbps: (rps('GET') * valueBytes) / 1e9 };
  } catch {
    return undefined;
  }
}
