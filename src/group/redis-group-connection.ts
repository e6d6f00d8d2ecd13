/**
 * The Redis side of one RedisProcessGroup rank: its client, a dedicated connection for
 * blocking pops, and a client-side deadline on every command, so a Redis that stops
 * answering fails a collective instead of hanging it. See docs/format.md, "Process groups".
 */
import { Cluster } from 'ioredis';
import { CollectiveTimeoutError } from '../core/errors.js';
import { closeClient, type RedisClient } from '../redis/connection.js';
import { LATE, within } from '../redis/deadline.js';

/** Longest single BLPOP, so close() and deadlines are noticed promptly. */
export const POLL_SLICE_MS = 500;
/** A blocking reply this late after its own server-side timeout means Redis is unreachable. */
export const REPLY_GRACE_MS = 2000;

/** Set by a caller that wants a pop to give up early (its collective failed elsewhere). */
export interface StopSignal {
  readonly requested: boolean;
}

export interface GroupConnectionSettings {
  readonly groupId: string;
  readonly rank: number;
  readonly timeoutMs: number;
  /** Throws GROUP_CLOSED once the group is closed; checked between blocking slices. */
  readonly assertOpen: (what: string) => void;
}

export class GroupConnection {
  private blocking: RedisClient | undefined;

  constructor(
    readonly client: RedisClient,
    private readonly ownsClient: boolean,
    private readonly settings: GroupConnectionSettings,
  ) {}

  /**
   * One message from `key`, or null once `deadline` passes. BLPOPs in slices on the
   * dedicated connection; a reply that does not come back at all (Redis unreachable)
   * drops that connection rather than outliving the deadline.
   */
  async pop(key: string, deadline: number, what: string, stop?: StopSignal): Promise<string | null> {
    for (;;) {
      this.settings.assertOpen(what);
      if (stop?.requested) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      const slice = Math.max(10, Math.min(left, POLL_SLICE_MS));
      const blocking = (this.blocking ??= this.dedicatedConnection());
      let reply: [string, string] | null | typeof LATE;
      try {
        reply = await within(blocking.blpop(key, slice / 1000), slice + REPLY_GRACE_MS);
      } catch (err) {
        this.settings.assertOpen(what); // close() disconnected the blocking connection under us
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

  async execute(pipeline: ReturnType<RedisClient['pipeline']>, what: string): Promise<void> {
    const results = await this.bounded(pipeline.exec(), what);
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0]!;
  }

  /** A non-blocking command that Redis does not answer within timeoutMs fails the collective instead of hanging it. */
  async bounded<T>(promise: Promise<T>, what: string): Promise<T> {
    const { groupId, rank, timeoutMs } = this.settings;
    const result = await within(promise, timeoutMs);
    if (result === LATE) throw new CollectiveTimeoutError(`process group "${groupId}": Redis did not answer within ${timeoutMs} ms (${what}, rank ${rank})`);
    return result;
  }

  /** Drops the blocking connection (a pop waiting on it ends with GROUP_CLOSED). */
  disconnectBlocking(): void {
    this.blocking?.disconnect();
  }

  /** Closes the main client if this group opened it, without hanging on an unresponsive Redis. */
  async close(): Promise<void> {
    if (this.ownsClient && (await within(closeClient(this.client), REPLY_GRACE_MS)) === LATE) this.client.disconnect();
  }

  /** BLPOP occupies its connection, so blocking reads get their own. */
  private dedicatedConnection(): RedisClient {
    const connection: RedisClient = this.client instanceof Cluster ? this.client.duplicate() : this.client.duplicate();
    connection.on('error', () => undefined); // surfaced through the rejected BLPOP
    return connection;
  }
}
