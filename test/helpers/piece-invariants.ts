/**
 * assertStoreAgrees' check of incremental saves' pieces, in both key layouts
 * (docs/format.md, "Incremental saves"): every stored piece is counted, each count equals
 * the number of save piece indexes holding it, the byte counters sum the counted pieces
 * once, and every piece index belongs to a save its checkpoint records (so a delete or a
 * replacing commit releases it). Nothing unreferenced remains.
 */
import type { Test } from 'tap';
import type { Cluster, Redis } from 'ioredis';

const re = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Standalone layout: P:blob:<id>, P:blobs, P:blobs:bytes, P:ckpt:{ID}:pieces:<saveId>. */
async function standaloneAgrees(t: Test, redis: Redis | Cluster, prefix: string, keys: readonly string[]): Promise<void> {
  const counts = await redis.hgetall(`${prefix}:blobs`);
  const held = new Map<string, number>();
  const indexes = keys.filter((k) => k.startsWith(`${prefix}:ckpt:{`) && /\}:pieces:[^:]+$/.test(k));
  for (const index of indexes) for (const id of await redis.smembers(index)) held.set(id, (held.get(id) ?? 0) + 1);
  const stored = keys.filter((k) => k.startsWith(`${prefix}:blob:`) && !k.startsWith(`${prefix}:blob:{`)).map((k) => k.slice(`${prefix}:blob:`.length));
  t.same(stored.filter((id) => !(Number(counts[id] ?? 0) > 0)).sort(), [], 'every stored piece is held by some save (nothing unreferenced remains)');
  const wrong = [...new Set([...Object.keys(counts), ...held.keys()])].filter((id) => Number(counts[id] ?? 0) !== (held.get(id) ?? 0));
  t.same(wrong.sort(), [], 'each piece count equals the number of save piece indexes holding it');
  const bytes = Object.keys(counts).reduce((sum, id) => sum + Number(id.slice(id.lastIndexOf('-') + 1)), 0);
  t.equal(Number((await redis.get(`${prefix}:blobs:bytes`)) ?? 0), bytes, 'the piece byte counter is the sum of the counted pieces (each once)');
}

/** Cluster layout, per tag tt: P:blob:{tt}:<id>, P:blobs:{tt}, …:bytes, …:holders, …:held:<ID>/<saveId>; P:ckpt:{ID}:ptags:<saveId>. */
async function taggedAgrees(t: Test, redis: Redis | Cluster, prefix: string, keys: readonly string[]): Promise<void> {
  const piece = new RegExp(`^${re(prefix)}:blob:\\{([0-9a-f]{2})\\}:(.+)$`);
  const hold = new RegExp(`^${re(prefix)}:blobs:\\{([0-9a-f]{2})\\}:held:(.+)/([^/]+)$`);
  const tags = new Set<string>();
  const stored: string[] = [];
  const held = new Map<string, number>();
  const problems: string[] = [];
  for (const key of keys) {
    const p = piece.exec(key);
    if (p) {
      stored.push(p[2]!);
      if (p[2]!.slice(0, 2) !== p[1]) problems.push(`${key}: piece under the wrong tag`);
    }
    const tag = new RegExp(`^${re(prefix)}:blobs:\\{([0-9a-f]{2})\\}`).exec(key)?.[1];
    if (tag) tags.add(tag);
    const h = hold.exec(key);
    if (!h) continue;
    const [, tagOf, id, saveId] = h as unknown as [string, string, string, string];
    for (const m of await redis.smembers(key)) {
      held.set(m, (held.get(m) ?? 0) + 1);
      if (m.slice(0, 2) !== tagOf) problems.push(`${key}: holds ${m} of another tag`);
    }
    if (!(await redis.sismember(`${prefix}:blobs:{${tagOf}}:holders`, `${id}/${saveId}`))) problems.push(`${key}: holder missing from the tag's holders`);
    if (!(await redis.sismember(`${prefix}:ckpt:{${id}}:saves`, saveId))) problems.push(`${key}: save ${saveId} not in the saves set of ${id} (no delete would release it)`);
    if (!(await redis.sismember(`${prefix}:ckpt:{${id}}:ptags:${saveId}`, tagOf))) problems.push(`${key}: tag not recorded in the save's tag set (its release would miss it)`);
  }
  const counts = new Map<string, number>();
  for (const tag of tags) {
    const hash = await redis.hgetall(`${prefix}:blobs:{${tag}}`);
    let bytes = 0;
    for (const [id, n] of Object.entries(hash)) {
      counts.set(id, Number(n));
      bytes += Number(id.slice(id.lastIndexOf('-') + 1));
    }
    const counter = Number((await redis.get(`${prefix}:blobs:{${tag}}:bytes`)) ?? 0);
    if (counter !== bytes) problems.push(`tag ${tag}: byte counter ${counter}, counted pieces hold ${bytes}`);
  }
  t.same(problems, [], 'Cluster layout: pieces under their tag, every piece index recorded (holders, saves set, tag set), byte counters right');
  t.same(stored.filter((id) => !((counts.get(id) ?? 0) > 0)).sort(), [], 'Cluster layout: every stored piece is held by some save');
  const wrong = [...new Set([...counts.keys(), ...held.keys()])].filter((id) => (counts.get(id) ?? 0) !== (held.get(id) ?? 0));
  t.same(wrong.sort(), [], 'Cluster layout: each piece count equals the number of piece indexes holding it');
}

export async function piecesAgree(t: Test, redis: Redis | Cluster, prefix: string, keys: readonly string[]): Promise<void> {
  await standaloneAgrees(t, redis, prefix, keys);
  if (keys.some((k) => k.startsWith(`${prefix}:blob:{`) || k.startsWith(`${prefix}:blobs:{`))) await taggedAgrees(t, redis, prefix, keys);
}

/** Keys of the piece bookkeeping (both layouts): global, checked by piecesAgree. */
export function isPieceKey(key: string, prefix: string): boolean {
  return key === `${prefix}:blobs` || key === `${prefix}:blobs:bytes` || key.startsWith(`${prefix}:blob:`) || key.startsWith(`${prefix}:blobs:{`);
}
