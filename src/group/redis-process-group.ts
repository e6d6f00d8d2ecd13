/**
 * RedisProcessGroup: collectives between separate OS processes through Redis lists. Each
 * message goes to the receiver's inbox for that collective; receivers block on it (BLPOP
 * on a dedicated connection, in short slices). Rank 0 claims the group id for a run and
 * admits the other ranks, so a reused group id never mixes runs. Keys, the run handshake,
 * failure modes and payload rules: docs/format.md, "Process groups".
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { CollectiveTimeoutError, DcpValueError } from '../core/errors.js';
import { closeClient, connect, type RedisClient, type RedisInput } from '../redis/connection.js';
import { DEFAULT_PREFIX, KeySpace, type GroupKeys } from '../redis/keys.js';
import { runScript } from '../redis/scripts.js';
import type { ProcessGroup } from './process-group.js';
import { describeRedisInput, groupRecipe, type RedisProcessGroupDescription } from '../redis/portable.js';
import type { WorkerRecipe } from '../async/recipe.js';

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

/** Longest single BLPOP, so close() and deadlines are noticed promptly. */
const POLL_SLICE_MS = 500;
/** A blocking reply this late after its own server-side timeout means Redis is unreachable. */
const REPLY_GRACE_MS = 2000;
/** Lifetime of rank 0's claim without a heartbeat: how long a crashed run blocks its group id. */
const CLAIM_TTL_MS = 10_000;
const CLAIM_REFRESH_MS = 3_000;
/** JSON at least this long, sent to more than one rank, is stored once instead of per inbox. */
const SHARED_PAYLOAD_CHARS = 256 * 1024;

/** One message: sender rank, the collective it belongs to, and the value inline (`v`) or in a shared hash (`ref`). */
interface Envelope {
  readonly f: number;
  readonly o: string;
  readonly v?: unknown;
  readonly ref?: string;
}

/** Rank 0's answer to a join: admitted, or the run could not start because these ranks never joined. */
interface Admission {
  readonly ok: boolean;
  readonly missing?: number[];
}

/** One collective call: its sequence number and its signature (`gather:1`), which every rank must agree on. */
interface Call {
  readonly seq: number;
  readonly op: string;
}

const LATE = Symbol('late');

/** `promise`, or LATE if it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof LATE> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof LATE>((resolve) => {
    timer = setTimeout(() => resolve(LATE), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class RedisProcessGroup implements ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly groupId: string;
  readonly timeoutMs: number;
  private readonly keys: GroupKeys;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private blocking: RedisClient | undefined;
  /** The run this rank belongs to, settled once by the first collective. */
  private run: Promise<string> | undefined;
  /** Rank 0's claim value while it holds the group id. */
  private claim: string | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;

  constructor(private readonly options: RedisProcessGroupOptions) {
    const { rank, worldSize, groupId } = options;
    if (!Number.isSafeInteger(worldSize) || worldSize < 1) throw new DcpValueError(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) throw new DcpValueError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new DcpValueError(`timeoutMs must be a positive number, got ${timeoutMs}`);
    if (options.prefix !== undefined && options.keyPrefix !== undefined && options.prefix !== options.keyPrefix) {
      throw new DcpValueError('prefix and its deprecated alias keyPrefix disagree; pass only prefix');
    }
    this.keys = new KeySpace(options.prefix ?? options.keyPrefix ?? DEFAULT_PREFIX).processGroup(groupId);
    this.rank = rank;
    this.worldSize = worldSize;
    this.groupId = groupId;
    this.timeoutMs = timeoutMs;
    const { client, owned } = connect(options.redis);
    this.client = client;
    this.ownsClient = owned;
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
      throw new DcpValueError(`scatter from rank ${src} needs exactly ${this.worldSize} values`);
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
    this.blocking?.disconnect();
    await this.releaseClaim();
    if (this.ownsClient && (await within(closeClient(this.client), REPLY_GRACE_MS)) === LATE) this.client.disconnect();
  }

  private async releaseClaim(): Promise<void> {
    clearInterval(this.heartbeat);
    const claim = this.claim;
    this.claim = undefined;
    // Bounded: close() must not hang on an unresponsive Redis (the claim then expires by itself).
    if (claim) await within(runScript(this.client, 'release-claim', [this.keys.claim], [claim]).catch(() => undefined), REPLY_GRACE_MS);
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
      throw new DcpValueError(`${name}: rank ${root} is outside the group (world size ${this.worldSize})`);
    }
    return { seq: this.seq++, op: root === undefined ? name : `${name}:${root}` };
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new DcpValueError(`process group "${this.groupId}" is closed (${what})`, 'GROUP_CLOSED');
  }

  private others(): number[] {
    return Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r !== this.rank);
  }

  private get messageTtlMs(): number {
    return Math.max(10_000, 2 * this.timeoutMs);
  }

  private joinRun(): Promise<string> {
    this.run ??= this.worldSize === 1 ? Promise.resolve('solo') : this.rank === 0 ? this.openRun() : this.joinAsFollower();
    return this.run;
  }

  /** Rank 0: claim the group id for a new run, then admit every other rank. */
  private async openRun(): Promise<string> {
    const deadline = Date.now() + this.timeoutMs;
    const nonce = randomBytes(12).toString('base64url');
    const claim = `${nonce}/${this.worldSize}`;
    while ((await this.bounded(this.client.set(this.keys.claim, claim, 'PX', CLAIM_TTL_MS, 'NX'), 'claim the group id')) !== 'OK') {
      if (Date.now() >= deadline) {
        throw new DcpValueError(`process group "${this.groupId}" is held by another live run (its claim did not come free within ${this.timeoutMs} ms); use another groupId`, 'GROUP_IN_USE');
      }
      await sleep(100);
      this.assertOpen('claim');
    }
    this.claim = claim;
    if (this.closed) {
      await this.releaseClaim(); // close() ran while the claim was in flight
      this.assertOpen('claim');
    }
    this.heartbeat = setInterval(() => {
      runScript(this.client, 'refresh-claim', [this.keys.claim], [claim, CLAIM_TTL_MS]).catch(() => undefined);
    }, CLAIM_REFRESH_MS);
    this.heartbeat.unref();

    const joined = new Set<number>();
    const joinKey = this.keys.join(nonce);
    while (joined.size < this.worldSize - 1) {
      const raw = await this.pop(joinKey, deadline, 'rendezvous');
      if (raw === null) break;
      const r = Number(raw);
      if (Number.isSafeInteger(r) && r > 0 && r < this.worldSize) joined.add(r);
    }
    const missing = this.others().filter((r) => !joined.has(r));
    await this.admit(nonce, [...joined], missing.length === 0 ? { ok: true } : { ok: false, missing });
    if (missing.length > 0) {
      await this.releaseClaim(); // the run never started: let a retry claim the id at once
      throw new CollectiveTimeoutError(`process group "${this.groupId}": rank(s) ${missing.join(', ')} did not join within ${this.timeoutMs} ms (rendezvous on rank 0)`);
    }
    return nonce;
  }

  private async admit(nonce: string, ranks: number[], admission: Admission): Promise<void> {
    if (ranks.length === 0) return;
    const message = JSON.stringify(admission);
    const pipeline = this.client.pipeline();
    for (const r of ranks) pipeline.rpush(this.keys.admit(nonce, r), message).pexpire(this.keys.admit(nonce, r), this.messageTtlMs);
    // After a successful start nobody needs the roster; after a failed one, followers read it to name the absent.
    if (admission.ok) pipeline.del(this.keys.joined(nonce));
    await this.execute(pipeline, 'admit the other ranks');
  }

  /**
   * Ranks ≠ 0: join the run named by rank 0's claim and wait to be admitted. The claim is
   * re-read while waiting, so a stale claim (rank 0 of a crashed run) is left for the new
   * one as soon as it appears.
   */
  private async joinAsFollower(): Promise<string> {
    const deadline = Date.now() + this.timeoutMs;
    let joined: string | undefined;
    /** A claim for another world size: fatal only if it is still there at the deadline (it may be a stale run's). */
    let foreignWorld: string | undefined;
    for (;;) {
      const claim = await this.bounded(this.client.get(this.keys.claim), 'read the group claim');
      if (claim && claim !== joined) {
        const [nonce, world] = claim.split('/');
        foreignWorld = Number(world) === this.worldSize ? undefined : world;
        if (foreignWorld === undefined) {
          // The list wakes rank 0; the set lets a follower that times out tell who never came.
          const joinKey = this.keys.join(nonce!);
          const joinedKey = this.keys.joined(nonce!);
          const pipeline = this.client.pipeline().sadd(joinedKey, this.rank).pexpire(joinedKey, this.messageTtlMs);
          await this.execute(pipeline.rpush(joinKey, String(this.rank)).pexpire(joinKey, this.messageTtlMs), 'join the run');
          joined = claim;
        }
      }
      if (joined) {
        const nonce = joined.split('/')[0]!;
        const raw = await this.pop(this.keys.admit(nonce, this.rank), Math.min(deadline, Date.now() + POLL_SLICE_MS), 'rendezvous');
        if (raw !== null) {
          const admission = JSON.parse(raw) as Admission;
          if (admission.ok) return nonce;
          throw new CollectiveTimeoutError(`process group "${this.groupId}": the run could not start, rank(s) ${admission.missing?.join(', ')} did not join within ${this.timeoutMs} ms (rendezvous on rank ${this.rank})`);
        }
      } else {
        await sleep(Math.max(0, Math.min(50, deadline - Date.now())));
      }
      this.assertOpen('rendezvous');
      if (Date.now() >= deadline && foreignWorld !== undefined) {
        throw new DcpValueError(`process group "${this.groupId}": rank 0 runs with world size ${foreignWorld}, this rank was given ${this.worldSize}`, 'WORLD_SIZE_MISMATCH');
      }
      if (Date.now() >= deadline) {
        if (!joined) throw new CollectiveTimeoutError(`process group "${this.groupId}": rank 0 did not start the run within ${this.timeoutMs} ms (rendezvous on rank ${this.rank})`);
        const present = new Set((await this.bounded(this.client.smembers(this.keys.joined(joined.split('/')[0]!)), 'read who joined')).map(Number));
        const missing = this.others().filter((r) => r !== 0 && !present.has(r));
        throw new CollectiveTimeoutError(
          missing.length > 0
            ? `process group "${this.groupId}": the run could not start, rank(s) ${missing.join(', ')} did not join within ${this.timeoutMs} ms (rendezvous on rank ${this.rank})`
            : `process group "${this.groupId}": rank 0 did not admit rank ${this.rank} within ${this.timeoutMs} ms though every rank joined (rank 0 died?)`,
        );
      }
    }
  }

  private async send(run: string, call: Call, to: readonly number[], value: unknown): Promise<void> {
    if (to.length === 0) return;
    const json = JSON.stringify(value);
    const pipeline = this.client.pipeline();
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
    await this.execute(pipeline, `${call.op} #${call.seq}`);
  }

  /** Pops one message from each rank in `from` out of this rank's inbox for `call`; indexes them by sender. */
  private async receive(run: string, call: Call, from: readonly number[], stop?: { readonly requested: boolean }): Promise<unknown[]> {
    const key = this.keys.inbox(run, call.seq, this.rank);
    const out = new Array<unknown>(this.worldSize);
    const waiting = new Set(from);
    const deadline = Date.now() + this.timeoutMs;
    while (waiting.size > 0) {
      const raw = await this.pop(key, deadline, call.op, stop);
      if (stop?.requested) throw new DcpValueError(`${call.op} #${call.seq} abandoned`, 'COLLECTIVE_ABANDONED');
      if (raw === null) {
        throw new CollectiveTimeoutError(
          `process group "${this.groupId}": ${call.op} #${call.seq} on rank ${this.rank} timed out after ${this.timeoutMs} ms; no message from rank(s) ${[...waiting].join(', ')}`,
        );
      }
      // Whatever else has already arrived comes in the same round trip (LPOP with a count, Redis ≥ 6.2).
      const more = waiting.size > 1 ? ((await this.bounded(this.client.lpop(key, waiting.size - 1), `${call.op} #${call.seq}`)) ?? []) : [];
      for (const message of [raw, ...more]) {
        const envelope = JSON.parse(message) as Envelope;
        if (envelope.o !== call.op || !waiting.has(envelope.f)) {
          throw new DcpValueError(
            `process group "${this.groupId}": collective mismatch at #${call.seq}: rank ${this.rank} called ${call.op}, rank ${envelope.f} called ${envelope.o}`,
            'COLLECTIVE_MISMATCH',
          );
        }
        waiting.delete(envelope.f);
        out[envelope.f] = envelope.ref === undefined ? envelope.v : await this.readShared(envelope.ref, call);
      }
    }
    return out;
  }

  private async readShared(ref: string, call: Call): Promise<unknown> {
    const [status, json] = await this.bounded(runScript(this.client, 'read-shared', [ref], []), `${call.op} #${call.seq}`);
    if (status !== 'OK' || json === undefined) throw new DcpValueError(`process group "${this.groupId}": the payload of ${call.op} #${call.seq} expired before rank ${this.rank} read it`, 'PAYLOAD_EXPIRED');
    return JSON.parse(json);
  }

  /**
   * One message from `key`, or null once `deadline` passes. BLPOPs in slices on the
   * dedicated connection; a reply that does not come back at all (Redis unreachable)
   * drops that connection rather than outliving the deadline.
   */
  private async pop(key: string, deadline: number, what: string, stop?: { readonly requested: boolean }): Promise<string | null> {
    for (;;) {
      this.assertOpen(what);
      if (stop?.requested) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      const slice = Math.max(10, Math.min(left, POLL_SLICE_MS));
      const blocking = (this.blocking ??= this.dedicatedConnection());
      let reply: [string, string] | null | typeof LATE;
      try {
        reply = await within(blocking.blpop(key, slice / 1000), slice + REPLY_GRACE_MS);
      } catch (err) {
        this.assertOpen(what); // close() disconnected the blocking connection under us
        throw err;
      }
      if (reply === LATE) {
        if (this.blocking === blocking) this.blocking = undefined;
        blocking.disconnect();
        continue;
      }
      if (reply) return reply[1];
    }
  }

  /** BLPOP occupies its connection, so blocking reads get their own. */
  private dedicatedConnection(): RedisClient {
    const connection: RedisClient = this.client instanceof Cluster ? this.client.duplicate() : this.client.duplicate();
    connection.on('error', () => undefined); // surfaced through the rejected BLPOP
    return connection;
  }

  private async execute(pipeline: ReturnType<RedisClient['pipeline']>, what: string): Promise<void> {
    const results = await this.bounded(pipeline.exec(), what);
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  /** A non-blocking command that Redis does not answer within timeoutMs fails the collective instead of hanging it. */
  private async bounded<T>(promise: Promise<T>, what: string): Promise<T> {
    const result = await within(promise, this.timeoutMs);
    if (result === LATE) throw new CollectiveTimeoutError(`process group "${this.groupId}": Redis did not answer within ${this.timeoutMs} ms (${what}, rank ${this.rank})`);
    return result;
  }
}
