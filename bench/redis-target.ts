/**
 * Where the benchmark talks to Redis: a private redis-server it starts on a free
 * port (fresh memory: the cold condition), or the user's `--redis-url`, which it
 * never flushes: it uses a unique prefix and deletes only keys under it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisServer } from '../test/helpers/redis-server.js';

export interface RedisTarget {
  readonly url: string;
  readonly redis: Redis;
  /** True for a server this run started (its memory was fresh at start). */
  readonly owned: boolean;
  readonly port: number | undefined;
  /** The server's unix socket, when this run started it (a local Redis reached without TCP). */
  readonly socketPath?: string;
  stop(): Promise<void>;
}

export async function startOwnRedis(): Promise<RedisTarget> {
  const socketDir = await mkdtemp(join(tmpdir(), 'dcp-bench-sock-'));
  const socketPath = join(socketDir, 'redis.sock');
  const server = await RedisServer.start({ args: ['--maxmemory-policy', 'noeviction', '--unixsocket', socketPath, '--unixsocketperm', '700'] });
  const redis = server.client();
  const stop = async () => {
    await server.stop();
    await rm(socketDir, { recursive: true, force: true });
  };
  return { url: server.url, redis, owned: true, port: server.port, socketPath, stop };
}

export async function connectRedis(url: string, warn: (text: string) => void): Promise<RedisTarget> {
  const redis = new Redis(url, { disableClientInfo: true, maxRetriesPerRequest: 3 });
  redis.on('error', () => {});
  const policy = (await redis.config('GET', 'maxmemory-policy').catch(() => [])) as string[];
  if (policy[1] !== undefined && policy[1] !== 'noeviction') warn(`maxmemory-policy is ${policy[1]}, not noeviction: Redis may evict checkpoint keys`);
  const port = Number(new URL(url).port || 6379);
  return { url, redis, owned: false, port, stop: async () => void redis.disconnect() };
}

export async function redisVersion(redis: Redis): Promise<string> {
  const info = await redis.info('server');
  return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
}

/** Deletes every key that starts with `prefix` (SCAN + UNLINK; only used for our own unique prefix). */
export async function deleteByPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${escapeGlob(prefix)}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
