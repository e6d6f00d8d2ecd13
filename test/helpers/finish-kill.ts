/**
 * Shared by the finish fault tests (test/redis/faults-finish*.test.ts): doomed saves by rank
 * processes (test/fixtures/rank.ts) whose coordinator the test SIGKILLs inside finish, saves and
 * loads in this process, and the checks of what a killed finish leaves.
 */
import type { Test } from 'tap';
import type { Redis } from 'ioredis';
import { load } from '../../src/core/load.js';
import { save } from '../../src/core/save.js';
import { KeySpace } from '../../src/redis/keys.js';
import { RedisStorageReader } from '../../src/redis/reader.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { startRanks, type RunningChild } from './child.js';
import { assertStoreAgrees, committed, rankFixtureReference } from './invariants.js';
import { RedisServer } from './redis-server.js';

/** Rank processes started, killed by the test file's teardown (a failed run's paused ranks). */
const started = new Set<RunningChild>();
export function killStarted(): void {
  for (const child of started) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
}

/** A Redis server of the test's own, stopped when it ends. */
export async function ownServer(t: Test): Promise<{ url: string; redis: Redis }> {
  const server = await RedisServer.start();
  t.teardown(() => server.stop());
  return { url: server.url, redis: server.client() };
}

export const LOCK_TTL_MS = 1500;
/** How long a follower waits for the coordinator's final broadcast (> LOCK_TTL_MS: once it gave up, the dead lock is gone too). */
const FOLLOWER_TIMEOUT_MS = 4000;
export const keys = new KeySpace();
export const OLD = 1;
export const NEW = 2;

export function doomedSave(url: string, id: string, env: NodeJS.ProcessEnv): RunningChild[] {
  const ranks = startRanks(url, 'save', id, 2, () => ({ SEED: String(NEW), LOCK_TTL_MS: String(LOCK_TTL_MS), ...env }), FOLLOWER_TIMEOUT_MS);
  for (const rank of ranks) started.add(rank);
  return ranks;
}

/** A save by this process of exactly what the rank fixture saves with `seed`. */
export async function saveHere(redis: Redis, id: string, seed: number): Promise<void> {
  const writer = new RedisStorageWriter({ redis, lockTtlMs: LOCK_TTL_MS });
  try {
    await save(rankFixtureReference(seed), { checkpointId: id, storageWriter: writer });
  } finally {
    await writer.close();
  }
}

/** The seed of the checkpoint as committed now (loaded in this process), or undefined if it does not load. */
export async function committedSeed(redis: Redis, id: string): Promise<number | undefined> {
  const sd = { seed: -1 };
  const reader = new RedisStorageReader({ redis });
  try {
    await load(sd, { checkpointId: id, storageReader: reader });
    return sd.seed;
  } catch {
    return undefined;
  } finally {
    await reader.close();
  }
}

/** Save ids that still own data keys of `id`. */
export async function dataSaves(redis: Redis, id: string): Promise<string[]> {
  const found = new Set<string>();
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `dcp:data:${id}:*`, 'COUNT', 1000);
    for (const key of batch) found.add(key.split(':').at(-3)!);
    cursor = next;
  } while (cursor !== '0');
  return [...found].sort();
}

export const sorted = (ids: Array<string | undefined>) => ids.map(String).sort();
export const hget = (redis: Redis, id: string, field: string) => redis.hget(keys.checkpoint(id).state, field).then((v) => v ?? undefined);

/** The next save (the dead lock has lapsed) commits whole and leaves data of its own save only. */
export async function nextSaveCollects(t: Test, redis: Redis, id: string, seed: number): Promise<void> {
  await saveHere(redis, id, seed);
  const current = await hget(redis, id, 'committedSaveId');
  t.same(await redis.smembers(keys.checkpoint(id).saves), [current], `${id}: the next save's commit collected every other save`);
  t.same(await dataSaves(redis, id), [current], `${id}: only the committed save has data keys`);
  await assertStoreAgrees(t, { redis, expect: { [id]: committed(rankFixtureReference(seed)) }, exhaustive: false });
}
