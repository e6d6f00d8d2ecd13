/**
 * RedisProcessGroup: collectives between separate OS processes through Redis lists. Each
 * message goes to the receiver's inbox for that collective; receivers block on it (BLPOP
 * on a dedicated connection, in short slices). Rank 0 claims the group id for a run and
 * admits the other ranks, so a reused group id never mixes runs. Keys, the run handshake,
 * failure modes and payload rules: docs/format.md, "Process groups".
 */
import { CollectiveTimeoutError, DcpValueError } from '../core/errors.js';
import { intOption, positiveNumberOption } from '../core/options.js';
import { connect, type RedisInput } from '../redis/connection.js';
import { DEFAULT_PREFIX, KeySpace, type GroupKeys } from '../redis/keys.js';
import { runScript } from '../redis/scripts.js';
import type { ProcessGroup } from '../core/process-group.js';
import { describeRedisInput } from '../redis/portable.js';
import { groupRecipe, type RedisProcessGroupDescription } from './portable-group.js';
import type { WorkerRecipe } from '../async/recipe.js';
import { GroupConnection, type StopSignal } from './redis-group-connection.js';
import { Rendezvous } from './redis-group-rendezvous.js';

export interface RedisProcessGroupOptions {
  /** An ioredis Redis or Cluster client (not closed by the group) or a redis:// URL (the group owns its connection). */
  readonly redis: RedisInput;
  /** Names the group; every rank of one job passes the same id (letters, digits, `._-:/`). */
  readonly groupId: string;
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Longest wait for the other ranks in one collective (default 60 s). It also bounds how
   * far apart ranks may reach the same collective, e.g. the spread of write times in a save.
   */
  readonly timeoutMs?: number;
  /** First part of every key (default `dcp`), as `prefix` of the writer, reader and catalog. */
  readonly prefix?: string;
  /** @deprecated Old name of `prefix`; still accepted. */
  readonly keyPrefix?: string;
}

/** JSON at least this long, sent to more than one rank, is stored once instead of per inbox. */
const SHARED_PAYLOAD_CHARS = 256 * 1024;

/** One message: sender rank, the collective it belongs to, and the value inline (`v`) or in a shared hash (`ref`). */
interface Envelope {
  readonly f: number;
  readonly o: string;
  readonly v?: unknown;
  readonly ref?: string;
}

/** One collective call: its sequence number and its signature (`gather:1`), which every rank must agree on. */
interface Call {
  readonly seq: number;
  readonly op: string;
}

export class RedisProcessGroup implements ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly groupId: string;
  readonly timeoutMs: number;
  private readonly keys: GroupKeys;
  private readonly conn: GroupConnection;
  private readonly rendezvous: Rendezvous;
  /** The run this rank belongs to, settled once by the first collective. */
  private run: Promise<string> | undefined;
  private seq = 0;
  private closed = false;

  constructor(private readonly options: RedisProcessGroupOptions) {
    const { rank, worldSize, groupId } = options;
    intOption('worldSize', worldSize, undefined);
    intOption('rank', rank, undefined, { min: 0, max: worldSize - 1 });
    const timeoutMs = positiveNumberOption('timeoutMs', options.timeoutMs, 60_000);
    if (options.prefix !== undefined && options.keyPrefix !== undefined && options.prefix !== options.keyPrefix) {
      throw new DcpValueError('DCP_VALUE_ERROR', 'prefix and its deprecated alias keyPrefix disagree; pass only prefix');
    }
    this.keys = new KeySpace(options.prefix ?? options.keyPrefix ?? DEFAULT_PREFIX).processGroup(groupId);
    this.rank = rank;
    this.worldSize = worldSize;
    this.groupId = groupId;
    this.timeoutMs = timeoutMs;
    const { client, owned } = connect(options.redis);
    const assertOpen = (what: string) => this.assertOpen(what);
    this.conn = new GroupConnection(client, owned, { groupId, rank, timeoutMs, assertOpen });
    this.rendezvous = new Rendezvous(this.conn, this.keys, { groupId, rank, worldSize, timeoutMs, messageTtlMs: this.messageTtlMs, assertOpen, isClosed: () => this.closed });
  }

  async gather<T>(value: T, dst: number): Promise<T[] | undefined> {
    const call = this.begin('gather', dst);
    const run = await this.joinRun();
    if (this.rank !== dst) {
      await this.send(run, call, [dst], value);
      return undefined;
    }
    const all = await this.receive(run, call, this.others());
    all[this.rank] = value;
    return all as T[];
  }

  async scatter<T>(values: T[] | undefined, src: number): Promise<T> {
    const call = this.begin('scatter', src);
    if (this.rank === src && (!Array.isArray(values) || values.length !== this.worldSize)) {
      throw new DcpValueError('DCP_VALUE_ERROR', `scatter from rank ${src} needs exactly ${this.worldSize} values`);
    }
    const run = await this.joinRun();
    if (this.rank === src) {
      await Promise.all(values!.map((v, r) => (r === src ? undefined : this.send(run, call, [r], v))));
      return values![src] as T;
    }
    return (await this.receive(run, call, [src]))[src] as T;
  }

  async broadcast<T>(value: T | undefined, src: number): Promise<T> {
    const call = this.begin('broadcast', src);
    const run = await this.joinRun();
    if (this.rank === src) {
      await this.send(run, call, this.others(), value);
      return value as T;
    }
    return (await this.receive(run, call, [src]))[src] as T;
  }

  /** Every rank sends its value straight to every other rank: one round, no relay through rank 0. */
  async allGather<T>(value: T): Promise<T[]> {
    return this.exchangeAll<T>('allGather', value);
  }

  async barrier(): Promise<void> {
    await this.exchangeAll('barrier', null);
  }

  /** The group as plain data (connection URL or client options, id, rank, world size, timeout, prefix). */
  describe(): RedisProcessGroupDescription {
    return { ...this.options, redis: describeRedisInput(this.options.redis) };
  }

  /** asyncSave's hook: the worker thread joins a group of the same ranks under a derived id (`<groupId>:async-<n>`). */
  workerRecipe(): WorkerRecipe {
    return groupRecipe(this.options);
  }

  /**
   * Stops the heartbeat, gives up rank 0's claim on the group id, and closes the
   * connections this group opened (the blocking one always; the main one if it came from
   * a URL). A collective waiting at that moment rejects with GROUP_CLOSED.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.conn.disconnectBlocking();
    await this.rendezvous.releaseClaim();
    await this.conn.close();
  }

  private async exchangeAll<T>(name: string, value: T): Promise<T[]> {
    const call = this.begin(name);
    const run = await this.joinRun();
    const others = this.others();
    // Receive while sending; if the send fails, stop receiving too (it would hold the blocking connection until its deadline).
    const stop = { requested: false };
    const receiving = this.receive(run, call, others, stop);
    receiving.catch(() => undefined); // its failure is awaited below; it must not count as unhandled meanwhile
    try {
      await this.send(run, call, others, value);
    } catch (err) {
      stop.requested = true;
      await receiving.catch(() => undefined);
      throw err;
    }
    const all = await receiving;
    all[this.rank] = value;
    return all as T[];
  }

  /** Takes the next sequence number synchronously, so it never depends on how a previous call ended. */
  private begin(name: string, root?: number): Call {
    this.assertOpen(name);
    if (root !== undefined && (!Number.isSafeInteger(root) || root < 0 || root >= this.worldSize)) {
      throw new DcpValueError('DCP_VALUE_ERROR', `${name}: rank ${root} is outside the group (world size ${this.worldSize})`);
    }
    return { seq: this.seq++, op: root === undefined ? name : `${name}:${root}` };
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new DcpValueError('GROUP_CLOSED', `process group "${this.groupId}" is closed (${what})`);
  }

  private others(): number[] {
    return Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r !== this.rank);
  }

  private get messageTtlMs(): number {
    return Math.max(10_000, 2 * this.timeoutMs);
  }

  private joinRun(): Promise<string> {
    this.run ??= this.rendezvous.start();
    return this.run;
  }

  private async send(run: string, call: Call, to: readonly number[], value: unknown): Promise<void> {
    if (to.length === 0) return;
    const json = JSON.stringify(value);
    const pipeline = this.conn.client.pipeline();
    const ttl = this.messageTtlMs;
    // The envelope is assembled around the value's JSON so a large value is serialized once.
    let message = `{"f":${this.rank},"o":${JSON.stringify(call.op)}`;
    if (json !== undefined && json.length >= SHARED_PAYLOAD_CHARS && to.length > 1) {
      const shared = this.keys.shared(run, call.seq, this.rank);
      pipeline.hset(shared, 'v', json, 'left', to.length).pexpire(shared, ttl);
      message += `,"ref":${JSON.stringify(shared)}}`;
    } else {
      message += json === undefined ? '}' : `,"v":${json}}`;
    }
    for (const r of to) pipeline.rpush(this.keys.inbox(run, call.seq, r), message).pexpire(this.keys.inbox(run, call.seq, r), ttl);
    await this.conn.execute(pipeline, `${call.op} #${call.seq}`);
  }

  /** Pops one message from each rank in `from` out of this rank's inbox for `call`; indexes them by sender. */
  private async receive(run: string, call: Call, from: readonly number[], stop?: StopSignal): Promise<unknown[]> {
    const key = this.keys.inbox(run, call.seq, this.rank);
    const out = new Array<unknown>(this.worldSize);
    const waiting = new Set(from);
    const deadline = Date.now() + this.timeoutMs;
    while (waiting.size > 0) {
      const raw = await this.conn.pop(key, deadline, call.op, stop);
      if (stop?.requested) throw new DcpValueError('COLLECTIVE_ABANDONED', `${call.op} #${call.seq} abandoned`);
      if (raw === null) {
        throw new CollectiveTimeoutError(
          `process group "${this.groupId}": ${call.op} #${call.seq} on rank ${this.rank} timed out after ${this.timeoutMs} ms; no message from rank(s) ${[...waiting].join(', ')}`,
        );
      }
      // Whatever else has already arrived comes in the same round trip (LPOP with a count, Redis ≥ 6.2).
      const more = waiting.size > 1 ? ((await this.conn.bounded(this.conn.client.lpop(key, waiting.size - 1), `${call.op} #${call.seq}`)) ?? []) : [];
      for (const message of [raw, ...more]) {
        const envelope = JSON.parse(message) as Envelope;
        if (envelope.o !== call.op || !waiting.has(envelope.f)) {
          throw new DcpValueError('COLLECTIVE_MISMATCH', `process group "${this.groupId}": collective mismatch at #${call.seq}: rank ${this.rank} called ${call.op}, rank ${envelope.f} called ${envelope.o}`);
        }
        waiting.delete(envelope.f);
        out[envelope.f] = envelope.ref === undefined ? envelope.v : await this.readShared(envelope.ref, call);
      }
    }
    return out;
  }

  private async readShared(ref: string, call: Call): Promise<unknown> {
    const [status, json] = await this.conn.bounded(runScript(this.conn.client, 'read-shared', [ref], []), `${call.op} #${call.seq}`);
    if (status !== 'OK' || json === undefined) throw new DcpValueError('PAYLOAD_EXPIRED', `process group "${this.groupId}": the payload of ${call.op} #${call.seq} expired before rank ${this.rank} read it`);
    return JSON.parse(json);
  }
}
