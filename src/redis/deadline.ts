/** Client-side deadlines: the one timeout helper of the library (a command Redis never answers must not hang its caller). */

/**
 * How long cleanup after a failure, or a release that TTLs also undo (a save's abort, a lock's
 * release, a load's unpin), waits for Redis before it leaves the rest to the TTLs and gc. With
 * ioredis' default retries a dead server held a failed save's abort for 180 s before this.
 */
export const CLEANUP_DEADLINE_MS = 2_000;

/** What `within` returns when the promise did not settle in time. */
export const LATE = Symbol('late');

/** `promise`, or LATE if it has not settled within `ms` (the promise itself is left running). */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof LATE> {
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

/** `promise`, or the error `onTimeout` makes if it has not settled within `ms`. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  const result = await within(promise, ms);
  if (result === LATE) throw onTimeout();
  return result;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
