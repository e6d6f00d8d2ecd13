/**
 * In-process process groups: ranks are concurrent async tasks in one process.
 * Used by tests and single-host tools; values are passed by reference.
 */
import { CollectiveTimeoutError, DcpValueError } from '../core/errors.js';
import { intOption, positiveNumberOption } from '../core/options.js';
import type { ProcessGroup } from '../core/process-group.js';

interface Rendezvous {
  readonly op: string;
  readonly values: unknown[];
  arrived: number;
  readonly waiters: Array<(values: unknown[]) => void>;
  readonly failers: Array<(err: Error) => void>;
}

class LocalHub {
  private readonly pending = new Map<number, Rendezvous>();
  constructor(
    readonly worldSize: number,
    readonly timeoutMs: number,
  ) {}

  /** Every collective is a rendezvous of all ranks on the same sequence number. */
  exchange(seq: number, op: string, rank: number, value: unknown): Promise<unknown[]> {
    let rv = this.pending.get(seq);
    if (!rv) {
      rv = { op, values: new Array(this.worldSize), arrived: 0, waiters: [], failers: [] };
      this.pending.set(seq, rv);
    }
    if (rv.op !== op) {
      const err = new DcpValueError('COLLECTIVE_MISMATCH', `collective mismatch at #${seq}: rank ${rank} called ${op}, others called ${rv.op}`);
      for (const fail of rv.failers) fail(err);
      this.pending.delete(seq);
      return Promise.reject(err);
    }
    rv.values[rank] = value;
    rv.arrived += 1;
    const current = rv;
    return new Promise<unknown[]>((resolve, reject) => {
      if (current.arrived === this.worldSize) {
        this.pending.delete(seq);
        for (const wake of current.waiters) wake(current.values);
        resolve(current.values);
        return;
      }
      const timer = setTimeout(() => {
        const missing = [...current.values.keys()].filter((r) => !(r in current.values));
        reject(new CollectiveTimeoutError(`local group: ${op} #${seq} timed out after ${this.timeoutMs} ms on rank ${rank}; ranks not arrived: ${missing.join(', ')}`));
      }, this.timeoutMs);
      timer.unref();
      current.waiters.push((values) => {
        clearTimeout(timer);
        resolve(values);
      });
      current.failers.push((err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }
}

class LocalProcessGroup implements ProcessGroup {
  private seq = 0;
  constructor(
    private readonly hub: LocalHub,
    readonly rank: number,
  ) {}

  get worldSize(): number {
    return this.hub.worldSize;
  }

  async gather<T>(value: T, dst: number): Promise<T[] | undefined> {
    const all = await this.hub.exchange(this.seq++, `gather:${dst}`, this.rank, value);
    return this.rank === dst ? (all as T[]) : undefined;
  }

  async scatter<T>(values: T[] | undefined, src: number): Promise<T> {
    if (this.rank === src && (!values || values.length !== this.worldSize)) {
      throw new DcpValueError('DCP_VALUE_ERROR', `scatter from rank ${src} needs exactly ${this.worldSize} values`);
    }
    const all = await this.hub.exchange(this.seq++, `scatter:${src}`, this.rank, values);
    return (all[src] as T[])[this.rank] as T;
  }

  async broadcast<T>(value: T | undefined, src: number): Promise<T> {
    const all = await this.hub.exchange(this.seq++, `broadcast:${src}`, this.rank, value);
    return all[src] as T;
  }

  async allGather<T>(value: T): Promise<T[]> {
    return (await this.hub.exchange(this.seq++, 'allGather', this.rank, value)) as T[];
  }

  async barrier(): Promise<void> {
    await this.hub.exchange(this.seq++, 'barrier', this.rank, null);
  }
}

export interface LocalGroupOptions {
  /** How long a rank waits for the others in one collective (default 60 s). */
  timeoutMs?: number;
}

/** One ProcessGroup per in-process rank, index = rank. */
export function createLocalGroups(worldSize: number, options: LocalGroupOptions = {}): ProcessGroup[] {
  intOption('worldSize', worldSize, undefined);
  const hub = new LocalHub(worldSize, positiveNumberOption('timeoutMs', options.timeoutMs, 60_000));
  return Array.from({ length: worldSize }, (_, rank) => new LocalProcessGroup(hub, rank));
}
