/** What the routes need from the catalog: the real CheckpointCatalog satisfies it. */
import type { CheckpointCatalog } from '../redis/catalog.js';

export type CatalogService = Pick<CheckpointCatalog, 'list' | 'get' | 'validate' | 'delete'>;

/** Round-trip check of the Redis connection, used by GET /health. */
export type RedisProbe = () => Promise<{ latencyMs: number }>;
