/** Bounded concurrency: at most N Redis requests in flight (writer, reader, validation). */

/** Requests in flight per rank by default (option maxInFlight of the writer and reader). */
export const DEFAULT_MAX_IN_FLIGHT = 4;
/**
 * The default on a Redis Cluster client: spread over the masters, 4 would leave each with ~1
 * request queued, idle between replies (measured here: 3 masters at 8 ≈ standalone at 4).
 */
export const DEFAULT_CLUSTER_MAX_IN_FLIGHT = 8;
/** Largest accepted maxInFlight. */
export const MAX_IN_FLIGHT = 1024;

/** Runs `task` over `items` with at most `limit` in flight; the first failure stops new tasks and is thrown. */
export async function boundedEach<T>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await task(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (rejected) throw rejected.reason;
}

/** At most `limit` holders at a time; `run` waits for a free slot. */
export class Slots {
  private active = 0;
  private readonly queue: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }
}
