/**
 * The run handshake of a RedisProcessGroup: rank 0 claims the group id for a new run (and
 * keeps the claim alive), the other ranks join the run named by the claim and wait to be
 * admitted. Why a handshake: docs/format.md, "Process groups".
 */
import { randomBytes } from 'node:crypto';
import { CollectiveTimeoutError, DcpValueError } from '../core/errors.js';
import { sleep, within } from '../redis/deadline.js';
import type { GroupKeys } from '../redis/keys.js';
import { runScript } from '../redis/scripts.js';
import { POLL_SLICE_MS, REPLY_GRACE_MS, type GroupConnection } from './redis-group-connection.js';

/** Lifetime of rank 0's claim without a heartbeat: how long a crashed run blocks its group id. */
const CLAIM_TTL_MS = 10_000;
const CLAIM_REFRESH_MS = 3_000;

/** Rank 0's answer to a join: admitted, or the run could not start because these ranks never joined. */
interface Admission {
  readonly ok: boolean;
  readonly missing?: number[];
}

export interface RendezvousSettings {
  readonly groupId: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  /** Lifetime of the keys a run writes and nobody may consume (join list, roster, admissions). */
  readonly messageTtlMs: number;
  readonly assertOpen: (what: string) => void;
  readonly isClosed: () => boolean;
}

export class Rendezvous {
  /** Rank 0's claim value while it holds the group id. */
  private claim: string | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: GroupConnection,
    private readonly keys: GroupKeys,
    private readonly settings: RendezvousSettings,
  ) {}

  /** The run nonce this rank belongs to (rank 0 opens the run, the others join it). */
  start(): Promise<string> {
    const { rank, worldSize } = this.settings;
    return worldSize === 1 ? Promise.resolve('solo') : rank === 0 ? this.openRun() : this.joinAsFollower();
  }

  /** Stops the heartbeat and gives up rank 0's claim; bounded, so close() never hangs on an unresponsive Redis (the claim then expires by itself). */
  async releaseClaim(): Promise<void> {
    clearInterval(this.heartbeat);
    const claim = this.claim;
    this.claim = undefined;
    if (claim) await within(runScript(this.conn.client, 'release-claim', [this.keys.claim], [claim]).catch(() => undefined), REPLY_GRACE_MS);
  }

  private others(): number[] {
    return Array.from({ length: this.settings.worldSize }, (_, r) => r).filter((r) => r !== this.settings.rank);
  }

  /** Rank 0: claim the group id for a new run, then admit every other rank. */
  private async openRun(): Promise<string> {
    const { groupId, worldSize, timeoutMs, assertOpen } = this.settings;
    const client = this.conn.client;
    const deadline = Date.now() + timeoutMs;
    const nonce = randomBytes(12).toString('base64url');
    const claim = `${nonce}/${worldSize}`;
    while ((await this.conn.bounded(client.set(this.keys.claim, claim, 'PX', CLAIM_TTL_MS, 'NX'), 'claim the group id')) !== 'OK') {
      if (Date.now() >= deadline) {
        throw new DcpValueError('GROUP_IN_USE', `process group "${groupId}" is held by another live run (its claim did not come free within ${timeoutMs} ms); use another groupId`);
      }
      await sleep(100);
      assertOpen('claim');
    }
    this.claim = claim;
    if (this.settings.isClosed()) {
      await this.releaseClaim(); // close() ran while the claim was in flight
      assertOpen('claim');
    }
    this.heartbeat = setInterval(() => {
      runScript(client, 'refresh-claim', [this.keys.claim], [claim, CLAIM_TTL_MS]).catch(() => undefined);
    }, CLAIM_REFRESH_MS);
    this.heartbeat.unref();

    const joined = new Set<number>();
    const joinKey = this.keys.join(nonce);
    while (joined.size < worldSize - 1) {
      const raw = await this.conn.pop(joinKey, deadline, 'rendezvous');
      if (raw === null) break;
      const r = Number(raw);
      if (Number.isSafeInteger(r) && r > 0 && r < worldSize) joined.add(r);
    }
    const missing = this.others().filter((r) => !joined.has(r));
    await this.admit(nonce, [...joined], missing.length === 0 ? { ok: true } : { ok: false, missing });
    if (missing.length > 0) {
      await this.releaseClaim(); // the run never started: let a retry claim the id at once
      throw new CollectiveTimeoutError(`process group "${groupId}": rank(s) ${missing.join(', ')} did not join within ${timeoutMs} ms (rendezvous on rank 0)`);
    }
    return nonce;
  }

  private async admit(nonce: string, ranks: number[], admission: Admission): Promise<void> {
    if (ranks.length === 0) return;
    const message = JSON.stringify(admission);
    const pipeline = this.conn.client.pipeline();
    for (const r of ranks) pipeline.rpush(this.keys.admit(nonce, r), message).pexpire(this.keys.admit(nonce, r), this.settings.messageTtlMs);
    // After a successful start nobody needs the roster; after a failed one, followers read it to name the absent.
    if (admission.ok) pipeline.del(this.keys.joined(nonce));
    await this.conn.execute(pipeline, 'admit the other ranks');
  }

  /**
   * Ranks ≠ 0: join the run named by rank 0's claim and wait to be admitted. The claim is
   * re-read while waiting, so a stale claim (rank 0 of a crashed run) is left for the new
   * one as soon as it appears.
   */
  private async joinAsFollower(): Promise<string> {
    const { groupId, rank, worldSize, timeoutMs, messageTtlMs, assertOpen } = this.settings;
    const client = this.conn.client;
    const deadline = Date.now() + timeoutMs;
    let joined: string | undefined;
    /** A claim for another world size: fatal only if it is still there at the deadline (it may be a stale run's). */
    let foreignWorld: string | undefined;
    for (;;) {
      const claim = await this.conn.bounded(client.get(this.keys.claim), 'read the group claim');
      if (claim && claim !== joined) {
        const [nonce, world] = claim.split('/');
        foreignWorld = Number(world) === worldSize ? undefined : world;
        if (foreignWorld === undefined) {
          // The list wakes rank 0; the set lets a follower that times out tell who never came.
          const joinKey = this.keys.join(nonce!);
          const joinedKey = this.keys.joined(nonce!);
          const pipeline = client.pipeline().sadd(joinedKey, rank).pexpire(joinedKey, messageTtlMs);
          await this.conn.execute(pipeline.rpush(joinKey, String(rank)).pexpire(joinKey, messageTtlMs), 'join the run');
          joined = claim;
        }
      }
      if (joined) {
        const nonce = joined.split('/')[0]!;
        const raw = await this.conn.pop(this.keys.admit(nonce, rank), Math.min(deadline, Date.now() + POLL_SLICE_MS), 'rendezvous');
        if (raw !== null) {
          const admission = JSON.parse(raw) as Admission;
          if (admission.ok) return nonce;
          throw new CollectiveTimeoutError(`process group "${groupId}": the run could not start, rank(s) ${admission.missing?.join(', ')} did not join within ${timeoutMs} ms (rendezvous on rank ${rank})`);
        }
      } else {
        await sleep(Math.max(0, Math.min(50, deadline - Date.now())));
      }
      assertOpen('rendezvous');
      if (Date.now() >= deadline && foreignWorld !== undefined) {
        throw new DcpValueError('WORLD_SIZE_MISMATCH', `process group "${groupId}": rank 0 runs with world size ${foreignWorld}, this rank was given ${worldSize}`);
      }
      if (Date.now() >= deadline) {
        if (!joined) throw new CollectiveTimeoutError(`process group "${groupId}": rank 0 did not start the run within ${timeoutMs} ms (rendezvous on rank ${rank})`);
        const present = new Set((await this.conn.bounded(client.smembers(this.keys.joined(joined.split('/')[0]!)), 'read who joined')).map(Number));
        const missing = this.others().filter((r) => r !== 0 && !present.has(r));
        throw new CollectiveTimeoutError(
          missing.length > 0
            ? `process group "${groupId}": the run could not start, rank(s) ${missing.join(', ')} did not join within ${timeoutMs} ms (rendezvous on rank ${rank})`
            : `process group "${groupId}": rank 0 did not admit rank ${rank} within ${timeoutMs} ms though every rank joined (rank 0 died?)`,
        );
      }
    }
  }
}
