/**
 * One command per key in one round trip: a pipeline on a single node; parallel commands on a
 * Cluster (the keys span slots, and ioredis routes each). What the catalog, gc, usage and key
 * removal read many small replies with (docs/format.md).
 */
import { Cluster } from 'ioredis';
import type { RedisClient } from './connection.js';

/** HGETALL of each key. */
export async function hgetallMany(client: RedisClient, keys: readonly string[]): Promise<Array<Record<string, string>>> {
  if (client instanceof Cluster) return Promise.all(keys.map((k) => client.hgetall(k)));
  const pipeline = client.pipeline();
  for (const key of keys) pipeline.hgetall(key);
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value as Record<string, string>;
  });
}

/**
 * An integer command (`strlen`, `scard`) of each key. An error reply (a key of another type)
 * throws, or reads as `errorAs` when given.
 */
export async function integersPerKey(client: RedisClient, command: 'strlen' | 'scard', keys: readonly string[], errorAs?: number): Promise<number[]> {
  const onError = (err: unknown): number => {
    if (errorAs === undefined) throw err;
    return errorAs;
  };
  if (client instanceof Cluster) return Promise.all(keys.map((k) => client[command](k).catch(onError)));
  const pipeline = client.pipeline();
  for (const key of keys) pipeline[command](key);
  return ((await pipeline.exec()) ?? []).map(([err, n]) => (err ? onError(err) : Number(n)));
}
