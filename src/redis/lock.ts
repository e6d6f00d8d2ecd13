/**
 * The checkpoint lock: Redlock over the lock nodes, plus a fencing token. Redlock alone
 * cannot stop a coordinator that was paused past its TTL from writing afterwards; the
 * token can: every control mutation is a Lua script that checks it.
 */
import { DcpError } from '../core/errors.js';
import { ExecutionError, Redlock, ResourceLockedError, type Lock } from '@sesamecare-oss/redlock';
import { closeClient, connect, type RedisClient, type RedisInput } from './connection.js';
import { CLEANUP_DEADLINE_MS, within, withDeadline } from './deadline.js';
import { CheckpointLockedError, LockUnavailableError } from './errors.js';

export const DEFAULT_LOCK_TTL_MS = 30_000;
const RETRY_DELAY_MS = 100;

export interface LockSettings {
  /** Independent nodes for the Redlock quorum. */
  readonly clients: readonly RedisClient[];
  readonly ttlMs: number;
  /** How long to wait for a lock held by someone else (0: fail at once). */
  readonly waitMs: number;
}

/** Lock nodes this library connects to itself: a dead node must fail its vote quickly, not queue. */
export const LOCK_CLIENT_OPTIONS = { maxRetriesPerRequest: 1, connectTimeout: 2000 } as const;

export function createRedlock(clients: readonly RedisClient[]): Redlock {
  return new Redlock(clients, { retryCount: 0, retryDelay: RETRY_DELAY_MS, retryJitter: 50, driftFactor: 0.01 });
}

/** Why an acquisition failed: a holder exists (locked) or no quorum answered (unavailable). */
async function classify(err: unknown, id: string, waitedMs: number): Promise<Error> {
  if (err instanceof ExecutionError) {
    const stats = await Promise.allSettled(err.attempts);
    const last = stats.at(-1);
    if (last?.status === 'fulfilled') {
      const reasons = [...last.value.votesAgainst.values()];
      if (reasons.some((e) => e instanceof ResourceLockedError)) return new CheckpointLockedError(id, waitedMs);
      return new LockUnavailableError(id, `${last.value.votesFor.size}/${last.value.membershipSize} nodes agreed, quorum is ${last.value.quorumSize}: ${reasons.map((e) => e.message).join('; ')}`);
    }
  }
  return new LockUnavailableError(id, err instanceof Error ? err.message : String(err));
}

/**
 * A held lock. While held it extends itself every ttl/3 and calls `onExtended` (which
 * pushes the lease in Redis forward); the first failure marks it lost for good.
 */
export class HeldLock {
  private timer: NodeJS.Timeout | undefined;
  private extending: Promise<void> | undefined;
  private lostError: Error | undefined;
  private released = false;

  constructor(
    private lock: Lock,
    readonly id: string,
    readonly ttlMs: number,
  ) {}

  /** Ms until the Redlock lock expires (by this process's clock, drift-adjusted). */
  get remainingMs(): number {
    return Math.max(0, this.lock.expiration - Date.now());
  }

  get lost(): Error | undefined {
    if (!this.lostError && !this.released && this.remainingMs === 0) this.lostError = new DcpError('FENCED', `lock on "${this.id}" expired`);
    return this.lostError;
  }

  startAutoExtend(onExtended: (leaseMs: number) => Promise<void>): void {
    const tick = () => {
      this.extending = (async () => {
        try {
          this.lock = await this.lock.extend(this.ttlMs);
          await onExtended(this.remainingMs);
          this.timer = setTimeout(tick, this.ttlMs / 3);
          this.timer.unref();
        } catch (err) {
          this.lostError = new DcpError('FENCED', `lock on "${this.id}" could not be extended: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
      })();
    };
    this.timer = setTimeout(tick, this.ttlMs / 3);
    this.timer.unref();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    // An expired or taken-over lock needs no release; one Redis does not answer expires with its TTL.
    await within(this.extending?.catch(() => {}) ?? Promise.resolve(), CLEANUP_DEADLINE_MS);
    await within(this.lock.release().catch(() => {}), CLEANUP_DEADLINE_MS);
  }
}

/** Acquires the lock on `resource`, waiting up to `waitMs` for a holder to let go. */
export async function acquireLock(redlock: Redlock, resource: string, id: string, settings: LockSettings): Promise<HeldLock> {
  const retryCount = Math.ceil(settings.waitMs / RETRY_DELAY_MS);
  const started = Date.now();
  try {
    const lock = await withDeadline(
      redlock.acquire([resource], settings.ttlMs, { retryCount }),
      settings.waitMs + Math.max(5_000, settings.ttlMs),
      () => new LockUnavailableError(id, 'lock nodes did not answer in time'),
    );
    return new HeldLock(lock, id, settings.ttlMs);
  } catch (err) {
    if (err instanceof LockUnavailableError) throw err;
    throw await classify(err, id, Date.now() - started);
  }
}

/**
 * The lock nodes of a writer or catalog: `lockRedis` (connected on first use, closed by
 * close()) or else the data connection, with one Redlock over them.
 */
export class LockNodes {
  private clients: RedisClient[] | undefined;
  private redlock: Redlock | undefined;
  private readonly owned: RedisClient[] = [];

  constructor(
    private readonly inputs: readonly RedisInput[] | undefined,
    private readonly dataClient: () => RedisClient,
  ) {}

  /** Acquires the lock on `resource` (checkpoint `id`), waiting up to `waitMs` for a holder. */
  acquire(resource: string, id: string, { ttlMs, waitMs }: { ttlMs: number; waitMs: number }): Promise<HeldLock> {
    this.clients ??= this.inputs?.length ? this.inputs.map((input) => this.own(connect(input, LOCK_CLIENT_OPTIONS))) : [this.dataClient()];
    this.redlock ??= createRedlock(this.clients);
    return acquireLock(this.redlock, resource, id, { clients: this.clients, ttlMs, waitMs });
  }

  /** Closes the lock connections this object opened (never the data connection). */
  async close(): Promise<void> {
    await Promise.all(this.owned.splice(0).map(closeClient));
  }

  private own({ client, owned }: { client: RedisClient; owned: boolean }): RedisClient {
    if (owned) this.owned.push(client);
    return client;
  }
}
