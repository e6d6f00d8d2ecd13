/**
 * Bulk connections on Redis Cluster: one set of BulkConnections per master, each segment
 * sent to the master that owns its key's slot (ioredis' slot map). A redirection (MOVED
 * after a resharding, ASK while a slot migrates) is followed; a master lost during a save
 * fails the save (writes it acknowledged may be gone from the promoted replica), during a
 * load the read waits for the failover and is retried. See docs/format.md, "Redis Cluster".
 */
import { Cluster } from 'ioredis';
import { DcpError } from '../core/errors.js';
import { choiceOption } from '../core/options.js';
import { DEFAULT_CLUSTER_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT } from './bounded.js';
import { BulkConnections } from './bulk-socket.js';
import type { RedisClient, RedisInput } from './connection.js';
import { fromRedisError } from './errors.js';

/** How long a save waits for a replica of each master to acknowledge its segments (see awaitReplicas). */
export const REPLICA_WAIT_MS = 10_000;

/** What writers and readers use of a bulk transport, standalone or Cluster. */
export interface BulkTransport {
  set(key: string, pieces: readonly Uint8Array[], over?: string): Promise<void>;
  getRangeInto(key: string, start: number, end: number, dest: Uint8Array, onBytes?: (bytes: Uint8Array) => void): Promise<number>;
  close(): void;
}

/** Bulk connections for `client`: per master on a Cluster, else BulkConnections (undefined when none can be had). */
export async function openBulk(client: RedisClient, perNode: number): Promise<BulkTransport | undefined> {
  if (client instanceof Cluster) return ClusterBulk.open(client, perNode);
  return BulkConnections.open(client, perNode);
}

/** How long a read waits for a lost master's replica to take over before it fails (REDIS_UNAVAILABLE). */
export const FAILOVER_WAIT_MS = 30_000;
const REFRESH_EVERY_MS = 250;
/** Redirections followed for one request before it fails (as ioredis' maxRedirections). */
const MAX_REDIRECTIONS = 16;
const REDIRECT = /^(MOVED|ASK) (\d+) (\S+)$/;

export class ClusterBulk implements BulkTransport {
  /** Node key ("host:port") → its connections (opening or open). */
  private readonly nodes = new Map<string, Promise<BulkConnections>>();
  private closed = false;

  private constructor(
    private readonly cluster: Cluster,
    private readonly perNode: number,
  ) {}

  static async open(cluster: Cluster, perNode: number): Promise<ClusterBulk> {
    if (cluster.status !== 'ready') await ready(cluster);
    const bulk = new ClusterBulk(cluster, Math.max(1, perNode));
    // Every master's connections open now, so that connection errors show before the first byte moves. A master
    // that cannot be reached (killed, its replica not yet promoted) does not send the whole save or load through
    // ioredis: its requests meet the failover handling of set/getRangeInto. None reachable: no bulk transport.
    const masters = new Set(cluster.slots.map((owners) => owners?.[0]).filter((k): k is string => k !== undefined));
    const opened = await Promise.allSettled([...masters].map((node) => bulk.connections(node)));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed && opened.every((r) => r.status === 'rejected')) {
      bulk.close();
      throw failed.reason;
    }
    return bulk;
  }

  /**
   * SET on the master of `key`'s slot. A redirected SET is sent again there (it rewrites the
   * same bytes). `over`, a pooled segment on that master, is DELeted right before the SET.
   */
  async set(key: string, pieces: readonly Uint8Array[], over?: string): Promise<void> {
    for (let hops = 0; ; hops++) {
      const node = this.masterOf(key);
      try {
        return await (await this.connections(node)).set(key, pieces, over, 'delete');
      } catch (err) {
        const redirect = this.redirection(err, hops);
        if (redirect === 'ask') {
          // The slot is migrating and the key is not on its source: ioredis sends ASKING + SET to the target.
          await this.cluster.set(key, Buffer.concat(pieces)).catch((e: unknown) => Promise.reject(fromRedisError(e)));
          return;
        }
        if (redirect === 'moved') {
          await this.refreshSlots();
          // Nodes may disagree for a moment after a resharding (MOVED back and forth until the new owner is known everywhere).
          if (hops >= 2) await new Promise((resolve) => setTimeout(resolve, Math.min(200, 20 * hops)));
          continue;
        }
        if (isUnavailable(err)) {
          this.forget(node);
          throw new DcpError('REDIS_UNAVAILABLE', `Cluster master ${node} was lost during the save (${(err as Error).message}); the save did not commit: what that master acknowledged may be missing from its replica`, { cause: err });
        }
        throw err;
      }
    }
  }

  /**
   * GETRANGE on the master of `key`'s slot; follows redirections and waits out a failover.
   * `onBytes` sees every byte of the reply once, in order (see BulkSocket.getRangeInto).
   */
  async getRangeInto(key: string, start: number, end: number, dest: Uint8Array, onBytes?: (bytes: Uint8Array) => void): Promise<number> {
    let fed = 0;
    const feed = onBytes && ((bytes: Uint8Array) => ((fed += bytes.byteLength), onBytes(bytes)));
    let waitUntil: number | undefined;
    for (let hops = 0; ; hops++) {
      const node = this.masterOf(key);
      // Bytes a lost master's partial reply already fed cannot be taken back: this attempt reads without streaming and must repeat them.
      const seen = fed > 0 ? Buffer.from(dest.subarray(0, fed)) : undefined;
      try {
        const got = await (await this.connections(node)).getRangeInto(key, start, end, dest, seen ? undefined : feed);
        return seen ? settle(key, got, dest, seen, onBytes!) : got;
      } catch (err) {
        const redirect = this.redirection(err, hops);
        if (redirect === 'ask') {
          const value = await this.cluster.getrangeBuffer(key, start, end).catch((e: unknown) => Promise.reject(fromRedisError(e)));
          if (value.byteLength > dest.byteLength) throw new DcpError('REDIS_ERROR', `Redis returned ${value.byteLength} bytes, more than the ${dest.byteLength} asked for`);
          dest.set(value);
          return onBytes ? settle(key, value.byteLength, dest, seen ?? Buffer.alloc(0), onBytes) : value.byteLength;
        }
        if (redirect === 'moved') {
          await this.refreshSlots();
          // Nodes may disagree for a moment after a resharding (MOVED back and forth until the new owner is known everywhere).
          if (hops >= 2) await new Promise((resolve) => setTimeout(resolve, Math.min(200, 20 * hops)));
          continue;
        }
        if (!isUnavailable(err) || this.closed) throw err;
        this.forget(node);
        waitUntil ??= Date.now() + FAILOVER_WAIT_MS;
        if (Date.now() > waitUntil) {
          throw new DcpError('REDIS_UNAVAILABLE', `Cluster master ${node} is unreachable and no replica took over its slots within ${FAILOVER_WAIT_MS} ms (${(err as Error).message})`, { cause: err });
        }
        await this.refreshSlots();
        await new Promise((resolve) => setTimeout(resolve, REFRESH_EVERY_MS));
        hops = -1; // waiting for a failover is not a redirection
      }
    }
  }

  /** awaitReplicas for the masters this transport wrote to, on its own connections. */
  async awaitReplicas(): Promise<void> {
    await Promise.all([...this.nodes].map(async ([node, opening]) => confirmReplicated(this.cluster, node, (n) => opening.then((c) => c.waitForReplicas(n, REPLICA_WAIT_MS)))));
  }

  close(): void {
    this.closed = true;
    for (const opening of this.nodes.values()) opening.then((c) => c.close(), () => {});
    this.nodes.clear();
  }

  private masterOf(key: string): string {
    return masterOf(this.cluster, key);
  }

  private connections(node: string): Promise<BulkConnections> {
    if (this.closed) return Promise.reject(new DcpError('REDIS_UNAVAILABLE', 'bulk connections closed'));
    let opening = this.nodes.get(node);
    if (!opening) {
      const client = this.cluster.nodes('all').find((n) => `${n.options.host}:${n.options.port}` === node);
      opening = client
        ? BulkConnections.open(client, this.perNode).then((c) => c ?? Promise.reject(new DcpError('REDIS_UNAVAILABLE', `no bulk connection to ${node}`)))
        : Promise.reject(new DcpError('REDIS_UNAVAILABLE', `Redis Cluster: no connection to master ${node}`));
      opening.catch(() => this.nodes.get(node) === opening && this.nodes.delete(node));
      this.nodes.set(node, opening);
    }
    return opening;
  }

  private forget(node: string): void {
    const opening = this.nodes.get(node);
    this.nodes.delete(node);
    opening?.then((c) => c.close(), () => {});
  }

  /** 'moved' (the caller refreshes the slot map and retries) or 'ask' for a redirection reply; undefined for anything else. */
  private redirection(err: unknown, hops: number): 'moved' | 'ask' | undefined {
    const match = err instanceof Error ? REDIRECT.exec(err.message) : null;
    if (!match) return undefined;
    if (hops >= MAX_REDIRECTIONS) throw new DcpError('REDIS_UNAVAILABLE', `Redis Cluster: too many redirections (last: ${match[0]})`, { cause: err });
    return match[1] === 'ASK' ? 'ask' : 'moved';
  }

  private refreshSlots(): Promise<void> {
    return new Promise((resolve) => this.cluster.refreshSlotsCache(() => resolve()));
  }
}

/**
 * Before a Cluster save commits: every master with a connected replica waits until one of
 * them acknowledged every segment written to it (WAIT on the very connections that wrote),
 * so that a failover after the commit cannot lose a committed checkpoint's bytes. None
 * within REPLICA_WAIT_MS fails the save (REDIS_UNAVAILABLE). A standalone Redis: nothing.
 */
export async function awaitReplicas(client: RedisClient, bulk: BulkTransport | undefined): Promise<void> {
  if (!(client instanceof Cluster)) return;
  if (bulk instanceof ClusterBulk) return bulk.awaitReplicas();
  // ioredis wrote through its node connections: WAIT on those.
  await Promise.all(client.nodes('master').map((node) => confirmReplicated(client, `${node.options.host}:${node.options.port}`, async (n) => Number(await node.call('WAIT', n, REPLICA_WAIT_MS)))));
}

async function confirmReplicated(cluster: Cluster, master: string, wait: (replicas: number) => Promise<number>): Promise<void> {
  const node = cluster.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === master);
  const info = node ? await node.info('replication').catch(() => '') : '';
  if (!(Number(/connected_slaves:(\d+)/.exec(info)?.[1] ?? 0) > 0)) return; // no replica to wait for (a failover would lose the slots anyway)
  const acked = await wait(1).catch((err: unknown) => Promise.reject(fromRedisError(err)));
  if (acked < 1) throw new DcpError('REDIS_UNAVAILABLE', `Cluster master ${master}: no replica acknowledged the save's segments within ${REPLICA_WAIT_MS} ms; the save did not commit`);
}

/** Resolves once `cluster` is ready (connecting a lazy one), or fails with REDIS_UNAVAILABLE within 10 s. */
function ready(cluster: Cluster): Promise<void> {
  if (cluster.status === 'wait') cluster.connect().catch(() => {}); // the wait below reports the failure
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DcpError('REDIS_UNAVAILABLE', `Redis Cluster is not ready (status ${cluster.status})`)), 10_000);
    cluster.delayUntilReady((err) => {
      clearTimeout(timer);
      if (err) reject(fromRedisError(err));
      else resolve();
    });
  });
}

/**
 * The order a rank sends its requests to a Cluster's masters (writer option clusterWriteOrder,
 * reader option clusterReadOrder). `'by-node'`: master after master, each rank starting at
 * master `rank mod N`; `'by-key'`: in key order, every master busy at once.
 */
export type ClusterOrder = 'by-node' | 'by-key';
export const CLUSTER_ORDERS: readonly ClusterOrder[] = ['by-node', 'by-key'];

/**
 * A writer's or reader's order option (default `'by-node'`) and what it implies: `spread` when
 * requests go to every master at once (a Cluster client, `'by-key'`), whose default in-flight
 * count is DEFAULT_CLUSTER_MAX_IN_FLIGHT; one master at a time takes the standalone defaults.
 */
export function clusterOrderOption(name: string, value: unknown, redis: RedisInput | undefined): { order: ClusterOrder; spread: boolean; defaultInFlight: number } {
  const order = choiceOption(name, value, CLUSTER_ORDERS, 'by-node');
  const spread = redis instanceof Cluster && order === 'by-key';
  return { order, spread, defaultInFlight: spread ? DEFAULT_CLUSTER_MAX_IN_FLIGHT : DEFAULT_MAX_IN_FLIGHT };
}

/**
 * `items` in `'by-node'` order: each node's items together (in their given order), the nodes in
 * name order starting at the `start`-th (mod their count), so that one rank keeps one master busy
 * at a time and ranks with different `start`s begin on different ones.
 */
export function orderByNode<T>(items: readonly T[], nodeOf: (item: T) => string, start: number): T[] {
  const byNode = new Map<string, T[]>();
  for (const item of items) {
    const node = nodeOf(item);
    const list = byNode.get(node);
    if (list) list.push(item);
    else byNode.set(node, [item]);
  }
  const nodes = [...byNode.keys()].sort();
  const first = nodes.length > 0 ? start % nodes.length : 0;
  return [...nodes.slice(first), ...nodes.slice(0, first)].flatMap((node) => byNode.get(node)!);
}

/** `items` (keyed by `keyOf`) in `order` for `client`: unchanged on a standalone Redis or `'by-key'`. A slot no master serves now sorts as ''. */
export function inClusterOrder<T>(client: RedisClient, order: ClusterOrder, items: readonly T[], keyOf: (item: T) => string, rank: number): readonly T[] {
  if (!(client instanceof Cluster) || order !== 'by-node') return items;
  return orderByNode(items, (item) => {
    try {
      return masterOf(client, keyOf(item));
    } catch {
      return '';
    }
  }, rank);
}

/** The master's node key ("host:port") for `key`'s slot in ioredis' current slot map. */
export function masterOf(cluster: Cluster, key: string): string {
  const node = cluster.slots[keySlot(key)]?.[0];
  if (node === undefined) throw new DcpError('REDIS_UNAVAILABLE', `Redis Cluster: no master serves slot ${keySlot(key)} (cluster down?)`);
  return node;
}

/** A reply read without streaming: `onBytes` gets what it has not seen yet, once the bytes it saw are found unchanged. */
function settle(key: string, got: number, dest: Uint8Array, seen: Buffer, onBytes: (bytes: Uint8Array) => void): number {
  if (got < seen.byteLength || !seen.equals(dest.subarray(0, seen.byteLength))) {
    throw new DcpError('REDIS_ERROR', `Redis Cluster: ${key} read again after a failover differs from the lost master's partial reply`);
  }
  onBytes(dest.subarray(seen.byteLength, got));
  return got;
}

function isUnavailable(err: unknown): boolean {
  return err instanceof DcpError ? err.code === 'REDIS_UNAVAILABLE' : (fromRedisError(err) as { code?: string }).code === 'REDIS_UNAVAILABLE';
}

/** The Cluster slot of a key: CRC16 (XMODEM) of the key, or of its `{hash tag}`, mod 16384. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
