/**
 * RedisStorageWriter across threads: a description (plain data:
 * the connection URL or the ioredis client's options, TLS included, the key prefix and
 * every option) and the factories the asyncSave worker calls to rebuild an equivalent
 * writer with its own connections (src/group/portable-group.ts does the same for RedisProcessGroup). See docs/format.md, "Async save".
 */
import { Cluster, Redis } from 'ioredis';
import type { WorkerRecipe } from '../async/recipe.js';
import { OWN_CLIENT_OPTIONS, closeClient, type RedisClient, type RedisInput } from './connection.js';
import { RedisStorageWriter, type RedisStorageWriterOptions } from './writer.js';

/** A connection as data: a redis:// URL, or the options (and Cluster startup nodes) of an ioredis client. */
export type RedisInputDescription = string | { readonly kind: 'redis'; readonly options: Record<string, unknown> } | { readonly kind: 'cluster'; readonly nodes: unknown; readonly options: Record<string, unknown> };

export interface RedisStorageWriterDescription extends Omit<RedisStorageWriterOptions, 'redis' | 'lockRedis'> {
  readonly redis?: RedisInputDescription;
  readonly lockRedis?: readonly RedisInputDescription[];
}

/** This module, for recipes (the worker imports it by URL, .ts from source or .js from dist). */
const MODULE = import.meta.url;

/** Keeps what survives postMessage and means the same elsewhere: data, not functions, sockets or class instances. */
function plainData(value: unknown, depth = 0): unknown {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return value;
  if (depth > 8) return undefined;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map((v) => plainData(v, depth + 1));
  const proto = typeof value === 'object' ? (Object.getPrototypeOf(value) as unknown) : undefined;
  if (proto !== Object.prototype && proto !== null) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const kept = plainData(v, depth + 1);
    if (kept !== undefined) out[k] = kept;
  }
  return out;
}

export function describeRedisInput(input: RedisInput): RedisInputDescription {
  if (typeof input === 'string') return input;
  if (input instanceof Cluster) {
    const nodes = (input as unknown as { startupNodes?: unknown }).startupNodes;
    return { kind: 'cluster', nodes: plainData(nodes), options: plainData(input.options) as Record<string, unknown> };
  }
  return { kind: 'redis', options: plainData(input.options) as Record<string, unknown> };
}

/** A client (or URL) for the description; clients made here are pushed onto `owned` for the caller to close. */
export function rebuildRedisInput(description: RedisInputDescription, owned: RedisClient[]): RedisInput {
  if (typeof description === 'string') return description;
  const options = { ...OWN_CLIENT_OPTIONS, ...description.options, lazyConnect: false };
  const client: RedisClient = description.kind === 'cluster' ? new Cluster(description.nodes as ConstructorParameters<typeof Cluster>[0], options) : new Redis(options);
  client.on('error', () => undefined); // surfaced through command rejections
  owned.push(client);
  return client;
}

export function describeWriter(options: RedisStorageWriterOptions): RedisStorageWriterDescription {
  const { redis, lockRedis, ...rest } = options;
  return {
    ...rest,
    ...(redis !== undefined ? { redis: describeRedisInput(redis) } : {}),
    ...(lockRedis !== undefined ? { lockRedis: lockRedis.map(describeRedisInput) } : {}),
  };
}

export function writerRecipe(options: RedisStorageWriterOptions): WorkerRecipe {
  return { module: MODULE, exportName: 'redisStorageWriterFromDescription', args: describeWriter(options) };
}

/** Worker side: a RedisStorageWriter equivalent to the described one; close() also closes the clients made here. */
export function redisStorageWriterFromDescription(description: RedisStorageWriterDescription): RedisStorageWriter {
  const owned: RedisClient[] = [];
  const { redis, lockRedis, ...rest } = description;
  const writer = new RedisStorageWriter({
    ...rest,
    ...(redis !== undefined ? { redis: rebuildRedisInput(redis, owned) } : {}),
    ...(lockRedis !== undefined ? { lockRedis: lockRedis.map((d) => rebuildRedisInput(d, owned)) } : {}),
  });
  const close = writer.close.bind(writer);
  writer.close = async () => {
    await close();
    await Promise.all(owned.map(closeClient));
  };
  return writer;
}
