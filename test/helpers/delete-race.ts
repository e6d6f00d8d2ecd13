/**
 * The scene of the delete-race fault tests (test/redis/faults-delete-race*.test.ts): a Redis
 * server of the test's own with a catalog and the admin API on it, and the helpers bound to it
 * (saves by rank processes or in this process, deletes through the catalog or the API).
 */
import type { Test } from 'tap';
import { save } from '../../src/core/save.js';
import { CheckpointCatalog } from '../../src/redis/catalog.js';
import { RedisStorageWriter } from '../../src/redis/writer.js';
import { buildApp } from '../../src/server/app.js';
import { startRanks, type ChildResult, type RunningChild } from './child.js';
import { assertStoreAgrees, rankFixtureReference, type Expectation } from './invariants.js';
import { RedisServer } from './redis-server.js';

/** Long enough that a save or delete of these files keeps its lock while 3 test files share 2 cores. */
export const LOCK_TTL_MS = 2500;
const RANK_TIMEOUT_MS = 10_000;
export const OLD = 1;
export const NEW = 2;

/** Rank and delete processes started, killed by the test file's teardown (a failed run's paused ranks). */
export const started = new Set<RunningChild>();
export function killStarted(): void {
  for (const child of started) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
}

export type Via = 'catalog' | 'api';
const STATUS: Record<string, number> = { CHECKPOINT_LOCKED: 409, FENCED: 409, CHECKPOINT_NOT_FOUND: 404 };

/**
 * A Redis server of the test's own with a catalog and the admin API on it, stopped when the test
 * ends, and the helpers bound to it. Each test ends with an exhaustive keyspace check of its server:
 * no other test's save or delete is ever halfway through there.
 */
export async function scene(t: Test) {
  const server = await RedisServer.start();
  const redis = server.client();
  const catalog = new CheckpointCatalog({ redis, lockTtlMs: LOCK_TTL_MS });
  const app = await buildApp({ redis, logger: false });
  t.teardown(async () => {
    await app.close();
    await catalog.close();
    await server.stop();
  });
  /** Every id the test leaves behind, with what it must be: its last check is exhaustive. */
  const final: Record<string, Expectation> = {};

  function savers(id: string, env: NodeJS.ProcessEnv): RunningChild[] {
    const ranks = startRanks(server.url, 'save', id, 2, () => ({ SEED: String(NEW), LOCK_TTL_MS: String(LOCK_TTL_MS), ...env }), RANK_TIMEOUT_MS);
    for (const rank of ranks) started.add(rank);
    return ranks;
  }

  /** A save by this process of what the rank fixture saves with `seed` (small segments: more keys than one UNLINK batch). */
  async function saveHere(id: string, seed: number, segmentBytes?: number): Promise<void> {
    const writer = new RedisStorageWriter({ redis, lockTtlMs: LOCK_TTL_MS, ...(segmentBytes ? { segmentBytes } : {}) });
    try {
      await save(rankFixtureReference(seed), { checkpointId: id, storageWriter: writer });
    } finally {
      await writer.close();
    }
  }

  /** Deletes `id` through the library or the admin API; "deleted" or the error code (the API's status must match it). */
  async function deleteVia(t: Test, via: Via, id: string): Promise<string> {
    if (via === 'catalog') return catalog.delete(id).then((removed) => (removed ? 'deleted' : 'CHECKPOINT_NOT_FOUND'), (e: { code?: string; message?: string }) => e.code ?? `untyped: ${e.message}`);
    const res = await app.inject({ method: 'DELETE', url: `/checkpoints/${encodeURIComponent(id)}` });
    if (res.statusCode === 204) return 'deleted';
    const code = String((res.json() as { code?: unknown }).code);
    t.equal(res.statusCode, STATUS[code] ?? -1, `DELETE ${id}: ${code} answers ${STATUS[code] ?? '?'}`);
    return code;
  }

  const listed = async (id: string) => (await catalog.list({ prefix: id })).items.some((s) => s.id === id);

  /** Save ids that own data keys of `id`, and how many keys. */
  async function dataKeys(id: string): Promise<{ saves: string[]; count: number }> {
    const saves = new Set<string>();
    let count = 0;
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `dcp:data:${id}:*`, 'COUNT', 1000);
      for (const key of batch) saves.add(key.split(':').at(-3)!);
      count += batch.length;
      cursor = next;
    } while (cursor !== '0');
    return { saves: [...saves], count };
  }

  /** The exhaustive check: everything left behind on this server agrees with what each run reported. */
  const leftBehindAgrees = () => assertStoreAgrees(t, { redis, expect: final });

  return { server, redis, catalog, app, final, savers, saveHere, deleteVia, listed, dataKeys, leftBehindAgrees };
}

/** The ranks' common outcome: all saved, all failed, or (never expected) mixed. */
export const outcomeOf = (ranks: ChildResult[]) => (ranks.every((r) => r.json?.ok === true) ? 'ok' : ranks.every((r) => r.json?.ok === false) ? 'failed' : 'mixed');
