/** A byte-exact picture of a Redis database, for tests that prove nothing outside the namespace changed. */
import type { Redis } from 'ioredis';

/** Key (hex) → DUMP (hex) and whether it has a TTL. */
export type Snapshot = Map<string, string>;

/** Every key of a database with its DUMP and PTTL (keys as hex: some are not UTF-8). */
export async function snapshot(client: Redis): Promise<Snapshot> {
  const keys = await client.keysBuffer('*');
  const pipeline = client.pipeline();
  for (const key of keys) {
    pipeline.dumpBuffer(key);
    pipeline.pttl(key);
  }
  const replies = (await pipeline.exec()) ?? [];
  const out: Snapshot = new Map();
  keys.forEach((key, i) => {
    const dump = replies[2 * i]![1] as Buffer | null;
    const pttl = replies[2 * i + 1]![1] as number;
    out.set(key.toString('hex'), `${dump?.toString('hex') ?? 'gone'}/${pttl > 0 ? 'ttl' : pttl}`);
  });
  return out;
}

export const hexKey = (key: string): string => Buffer.from(key).toString('hex');
export const unhex = (hex: string): string => Buffer.from(hex, 'hex').toString('utf8');
