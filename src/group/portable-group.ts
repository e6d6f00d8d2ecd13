/**
 * RedisProcessGroup across threads: its options as plain data (see src/redis/portable.ts)
 * and the factory the asyncSave worker calls to rebuild the group, under a derived group
 * id, with its own connection. See docs/format.md, "Async save".
 */
import { createHash } from 'node:crypto';
import type { GroupContext, WorkerRecipe } from '../async/recipe.js';
import { closeClient, type RedisClient } from '../redis/connection.js';
import { describeRedisInput, rebuildRedisInput, type RedisInputDescription } from '../redis/portable.js';
import { RedisProcessGroup, type RedisProcessGroupOptions } from './redis-process-group.js';

export interface RedisProcessGroupDescription extends Omit<RedisProcessGroupOptions, 'redis'> {
  readonly redis: RedisInputDescription;
}

/** This module, for recipes (the worker imports it by URL, .ts from source or .js from dist). */
const MODULE = import.meta.url;

export function groupRecipe(options: RedisProcessGroupOptions): WorkerRecipe {
  return { module: MODULE, exportName: 'redisProcessGroupFromDescription', args: { ...options, redis: describeRedisInput(options.redis) } satisfies RedisProcessGroupDescription };
}

/** The group id of a background save's group: the caller's id plus the namespace, hashed down when too long. */
export function derivedGroupId(groupId: string, namespace: string): string {
  const id = `${groupId}:${namespace}`;
  if (id.length <= 200) return id;
  return `${groupId.slice(0, 150)}~${createHash('sha256').update(groupId).digest('hex').slice(0, 16)}:${namespace}`.slice(0, 200);
}

/** Worker side: a RedisProcessGroup over the same Redis and key prefix, under the derived group id. */
export function redisProcessGroupFromDescription(description: RedisProcessGroupDescription, context: GroupContext): RedisProcessGroup {
  const owned: RedisClient[] = [];
  const group = new RedisProcessGroup({ ...description, redis: rebuildRedisInput(description.redis, owned), groupId: derivedGroupId(description.groupId, context.namespace) });
  const close = group.close.bind(group);
  group.close = async () => {
    await close();
    await Promise.all(owned.map(closeClient));
  };
  return group;
}
