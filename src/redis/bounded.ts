/** Bounded concurrency: at most N Redis requests in flight (writer, reader, validation). */

/** Requests in flight per rank by default (option maxInFlight of the writer and reader). */
export const DEFAULT_MAX_IN_FLIGHT = 4;
/**
 * The default where requests spread over a Cluster's masters (a save or load in 'by-key'
 * order): 4 would leave each with ~1 request queued, idle between replies (measured here:
 * 3 masters at 8 ≈ standalone at 4). 'by-node', one master at a time, keeps the standalone default.
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

/**
 * At most `limit` bytes held at a time (a request larger than the limit runs alone), first come
 * first served. The reader holds the bytes of each GETRANGE until its reply has arrived: Redis
 * copies a reply into a buffer of its size before sending it, and many large replies at once
 * cost it page faults (docs/performance.md, "Issue 15").
 */
export class ByteWindow {
  private held = 0;
  private readonly queue: Array<{ readonly bytes: number; readonly resolve: () => void }> = [];
  constructor(private readonly limit: number) {}

  async run<T>(bytes: number, task: () => Promise<T>): Promise<T> {
    if (this.held > 0 && (this.queue.length > 0 || this.held + bytes > this.limit)) await new Promise<void>((resolve) => this.queue.push({ bytes, resolve }));
    else this.held += bytes;
    try {
      return await task();
    } finally {
      this.held -= bytes;
      this.admit();
    }
  }

  private admit(): void {
    for (let head = this.queue[0]; head !== undefined; head = this.queue[0]) {
      if (this.held > 0 && this.held + head.bytes > this.limit) return;
      this.queue.shift();
      this.held += head.bytes;
      head.resolve();
    }
  }
}

/**
 * A byte rate for one rank's data writes or reads (writer and reader option maxBytesPerSecond):
 * a request starts once the bytes admitted before it are spread over time at `bytesPerSecond`;
 * the first starts at once, and time spent idle is not saved up for a burst. Requests are
 * admitted in call order. At Infinity every request is due at once (no limit, no timer).
 * See docs/performance.md, "Pacing a save".
 */
export class Pace {
  private next = 0;
  constructor(private readonly bytesPerSecond: number) {}

  async admit(bytes: number): Promise<void> {
    const now = performance.now();
    const at = Math.max(this.next, now);
    this.next = at + (bytes / this.bytesPerSecond) * 1000;
    // A timer can fire a little early (it counts from the event loop's cached time): wait out the rest.
    for (let wait = at - now; wait > 0; wait = at - performance.now()) await new Promise<void>((resolve) => setTimeout(resolve, wait));
  }
}
