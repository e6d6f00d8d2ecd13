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
}

/** SET `payload` split into chunkBytes-sized views (no copies), `concurrency` in flight. */
export async function rawSet(redis: Redis, payload: Uint8Array, opts: RawOptions): Promise<Throughput> {
  const n = Math.ceil(payload.byteLength / opts.chunkBytes);
  const t0 = performance.now();
  await boundedAll(n, opts.concurrency, async (i) => {
    const start = i * opts.chunkBytes;
    const view = Buffer.from(payload.buffer, payload.byteOffset + start, Math.min(opts.chunkBytes, payload.byteLength - start));
    await redis.set(`${opts.keyPrefix}:${i}`, view);
  });
  return throughput(payload.byteLength, (performance.now() - t0) / 1000);
}

/** GET every chunk back with getBuffer into `dest`. */
export async function rawGet(redis: Redis, dest: Uint8Array, opts: RawOptions): Promise<Throughput> {
  const n = Math.ceil(dest.byteLength / opts.chunkBytes);
  const t0 = performance.now();
  await boundedAll(n, opts.concurrency, async (i) => {
    const buf = await redis.getBuffer(`${opts.keyPrefix}:${i}`);
    if (buf) dest.set(buf, i * opts.chunkBytes);
  });
  return throughput(dest.byteLength, (performance.now() - t0) / 1000);
}

export async function deleteRaw(redis: Redis, keyPrefix: string, chunks: number): Promise<void> {
  for (let i = 0; i < chunks; i += 1000) {
    const keys = Array.from({ length: Math.min(1000, chunks - i) }, (_, j) => `${keyPrefix}:${i + j}`);
    await redis.unlink(...keys);
  }
}

/** Writes and reads the same bytes as files, as DCP's FileSystemWriter would (one file per 64 MiB). */
export async function fsRoundTrip(payload: Uint8Array, fileBytes = 64 << 20): Promise<{ write: Throughput; read: Throughput }> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-dcp-bench-'));
  try {
    const n = Math.ceil(payload.byteLength / fileBytes);
    let t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const fh = await open(join(dir, `${i}.distcp`), 'w');
      const start = i * fileBytes;
      await fh.write(payload, start, Math.min(fileBytes, payload.byteLength - start));
      await fh.close();
    }
    const write = throughput(payload.byteLength, (performance.now() - t0) / 1000);
    t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const fh = await open(join(dir, `${i}.distcp`), 'r');
      const start = i * fileBytes;
      await fh.read(payload, start, Math.min(fileBytes, payload.byteLength - start), 0);
      await fh.close();
    }
    const read = throughput(payload.byteLength, (performance.now() - t0) / 1000);
    return { write, read };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
