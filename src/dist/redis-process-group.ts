/**
 * Collectives between separate OS processes through Redis lists: each message goes
 * to the receiver's inbox for that collective (`…:<seq>:<rank>`), and receivers block
 * on their inbox (BLPOP on a dedicated connection). All of a group's keys share the
 * hash tag `{groupId}`, so they live in one Cluster slot.
 *
 * Runs are told apart by a token: rank 0 claims the group id with a random nonce
 * (SET NX), the other ranks read it, and every message carries it, so a message left
 * over from an earlier run with the same group id is never mistaken for a current one.
 * The claim expires when unused, so a group id can be reused after a crash.
 */
import { randomBytes } from 'node:crypto';
import { CollectiveTimeoutError, DcpValueError } from '../core/errors.js';
import { closeClient, connect, type RedisClient, type RedisInput } from '../redis/connection.js';
import type { ProcessGroup } from './process-group.js';

export interface RedisProcessGroupOptions {
  readonly redis: RedisInput;
  /** Names the group; every rank of one job passes the same id. */
  readonly groupId: string;
  readonly rank: number;
  readonly worldSize: number;
  /** Longest wait for the other ranks in one collective (default 60 s). */
  readonly timeoutMs?: number;
  readonly keyPrefix?: string;
}

const GROUP_ID = /^[A-Za-z0-9._\-:/]{1,200}$/;
/** Longest single BLPOP, so close() and deadlines are noticed promptly. */
const POLL_SLICE_MS = 1000;

interface Envelope {
  readonly t: string;
  readonly f: number;
  readonly v: unknown;
}

export class RedisProcessGroup implements ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly groupId: string;
  readonly timeoutMs: number;
  private readonly base: string;
  private readonly client: RedisClient;
  private readonly ownsClient: boolean;
  private blocking: RedisClient | undefined;
  private token: string | undefined;
  private seq = 0;
  private closed = false;

  constructor(options: RedisProcessGroupOptions) {
    const { rank, worldSize, groupId } = options;
    if (!Number.isSafeInteger(worldSize) || worldSize < 1) throw new DcpValueError(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isSafeInteger(rank) || rank < 0 || rank >= worldSize) throw new DcpValueError(`rank must be in [0, ${worldSize}), got ${rank}`);
    if (typeof groupId !== 'string' || !GROUP_ID.test(groupId)) throw new DcpValueError('groupId must be 1-200 characters of letters, digits and . _ - : /', 'INVALID_GROUP_ID');
    this.rank = rank;
    this.worldSize = worldSize;
    this.groupId = groupId;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.base = `${options.keyPrefix ?? 'dcp'}:pg:{${groupId}}`;
    const { client, owned } = connect(options.redis);
    this.client = client;
    this.ownsClient = owned;
  }

  async gather<T>(value: T, dst: number): Promise<T[] | undefined> {
    const seq = await this.begin('gather');
    if (this.rank !== dst) {
      await this.send(seq, [dst], value);
      return undefined;
    }
    const all = await this.receive(seq, this.worldSize - 1, 'gather');
    all[this.rank] = value;
    return all as T[];
  }

  async scatter<T>(values: T[] | undefined, src: number): Promise<T> {
    const seq = await this.begin('scatter');
    if (this.rank === src) {
      if (!values || values.length !== this.worldSize) throw new DcpValueError(`scatter from rank ${src} needs exactly ${this.worldSize} values`);
      await Promise.all(values.map((v, r) => (r === src ? undefined : this.send(seq, [r], v))));
      return values[src] as T;
    }
    return (await this.receive(seq, 1, 'scatter'))[src] as T;
  }

  async broadcast<T>(value: T | undefined, src: number): Promise<T> {
    const seq = await this.begin('broadcast');
    if (this.rank === src) {
      await this.send(seq, this.others(), value);
      return value as T;
    }
    return (await this.receive(seq, 1, 'broadcast'))[src] as T;
  }

  async allGather<T>(value: T): Promise<T[]> {
    const gathered = await this.gather(value, 0);
    return this.broadcast(gathered, 0);
  }

  async barrier(): Promise<void> {
    await this.allGather(null);
  }

  /** Closes the connections this group opened (the blocking one always; the main one if it came from a URL). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.blocking) await closeClient(this.blocking);
    if (this.ownsClient) await closeClient(this.client);
  }

  private others(): number[] {
    return Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r !== this.rank);
  }

  private inbox(seq: number, rank: number): string {
    return `${this.base}:${seq}:${rank}`;
  }

  private get ownerKey(): string {
    return `${this.base}:owner`;
  }

  private async begin(op: string): Promise<number> {
    if (this.closed) throw new DcpValueError(`process group ${this.groupId} is closed`);
    this.token ??= await this.joinRun(op);
    if (this.rank === 0) await this.client.pexpire(this.ownerKey, this.ttlMs());
    return this.seq++;
  }

  private ttlMs(): number {
    return Math.max(10_000, 2 * this.timeoutMs);
  }

  private async joinRun(op: string): Promise<string> {
    if (this.rank === 0) {
      const nonce = randomBytes(12).toString('base64url');
      const ok = await this.client.set(this.ownerKey, nonce, 'PX', this.ttlMs(), 'NX');
      if (ok !== 'OK') {
        throw new DcpValueError(`process group "${this.groupId}" is in use by another run (or one that crashed less than ${this.ttlMs()} ms ago); use a fresh groupId`, 'GROUP_IN_USE');
      }
      return nonce;
    }
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const nonce = await this.client.get(this.ownerKey);
      if (nonce) return nonce;
      if (Date.now() > deadline) throw new CollectiveTimeoutError(`process group "${this.groupId}": rank 0 did not start the run within ${this.timeoutMs} ms (${op}, rank ${this.rank})`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** BLPOP occupies a connection, so blocking reads get their own. */
  private dedicatedConnection(): RedisClient {
    const dup = (this.client as { duplicate(): RedisClient }).duplicate();
    dup.on('error', () => {});
    return dup;
  }

  private async send(seq: number, to: readonly number[], value: unknown): Promise<void> {
    const message = JSON.stringify({ t: this.token!, f: this.rank, v: value ?? null } satisfies Envelope);
    const pipeline = this.client.pipeline();
    for (const r of to) pipeline.rpush(this.inbox(seq, r), message).pexpire(this.inbox(seq, r), this.ttlMs());
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  /** Pops `count` messages of this run from this rank's inbox; indexes them by sender. */
  private async receive(seq: number, count: number, op: string): Promise<unknown[]> {
    const blocking = (this.blocking ??= this.dedicatedConnection());
    const key = this.inbox(seq, this.rank);
    const out = new Array<unknown>(this.worldSize);
    const from = new Set<number>();
    const deadline = Date.now() + this.timeoutMs;
    while (from.size < count) {
      if (this.closed) throw new DcpValueError(`process group ${this.groupId} closed during ${op}`);
      const left = deadline - Date.now();
      if (left <= 0) {
        const missing = Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r !== this.rank && !from.has(r));
        throw new CollectiveTimeoutError(`process group "${this.groupId}": ${op} #${seq} on rank ${this.rank} timed out after ${this.timeoutMs} ms; no message from rank(s) ${missing.join(', ')}`);
      }
      const reply = await blocking.blpop(key, Math.min(left, POLL_SLICE_MS) / 1000);
      if (!reply) continue;
      const envelope = JSON.parse(reply[1]) as Envelope;
      if (envelope.t !== this.token) continue; // left over from another run
      if (!Number.isInteger(envelope.f) || envelope.f < 0 || envelope.f >= this.worldSize || from.has(envelope.f)) {
        throw new DcpValueError(`process group "${this.groupId}": unexpected message from rank ${envelope.f} in ${op} #${seq}`, 'COLLECTIVE_MISMATCH');
      }
      from.add(envelope.f);
      out[envelope.f] = envelope.v;
    }
    return out;
  }
}
