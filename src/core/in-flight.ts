/**
 * One save in flight per storage writer, process group and stager (docs/format.md,
 * "Async save"). A save (async or not) first waits, in call order, for every earlier
 * save that shares one of those with it to commit or fail; so memory holds at most one
 * staged copy and a stager's buffers are never overwritten while an upload reads them.
 *
 * A background save that fails while nobody awaits its `committed` is kept as a pending
 * failure: the next save through the same writer/group, or `waitForPendingSave()`,
 * rejects with it (then it is reported and forgotten), as DCP surfaces an async_save
 * failure on the next call.
 */
import { DcpError } from './errors.js';

/** Calls that name no writer, group or stager share this lane. */
const DEFAULT_LANE = {};

interface Failure {
  readonly error: unknown;
  /** Whether the caller already saw the failure (awaited or handled `committed`). */
  readonly seen: () => boolean;
  reported: boolean;
}

/** The tail of each lane: settles when the last save queued on it is done. */
const tails = new WeakMap<object, Promise<void>>();
/** A failure not yet seen by the caller, per lane. */
const failures = new WeakMap<object, Failure>();
/** Every save still in flight and every unreported failure, for `waitForPendingSave()` without arguments. */
const running = new Set<Promise<void>>();
const unreported = new Set<Failure>();

export interface LaneOwners {
  readonly storageWriter?: object | undefined;
  readonly processGroup?: object | undefined;
  readonly stager?: object | undefined;
}

/** The lanes a save with these options occupies. */
export function lanesOf(owners: LaneOwners): object[] {
  const lanes = [owners.storageWriter, owners.processGroup, owners.stager].filter((o): o is object => typeof o === 'object' && o !== null);
  return lanes.length > 0 ? lanes : [DEFAULT_LANE];
}

/** A place in the lanes: `ready` resolves when every earlier save is done; `done()` lets the next one go. */
export interface LaneTicket {
  readonly ready: Promise<void>;
  /** Records the outcome; a failure becomes a pending failure unless `observed()` says the caller saw it. */
  done(error?: unknown, observed?: () => boolean): void;
}

/** Queues a save on `lanes` (synchronously, so call order is queue order). */
export function enterLanes(lanes: readonly object[]): LaneTicket {
  const earlier = lanes.map((lane) => tails.get(lane) ?? Promise.resolve());
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  for (const lane of lanes) tails.set(lane, finished);
  running.add(finished);
  const ready = Promise.all(earlier).then(() => throwPendingFailure(lanes));
  return {
    ready,
    done(error?: unknown, observed?: () => boolean) {
      if (error !== undefined) {
        const failure: Failure = { error, seen: observed ?? (() => false), reported: false };
        for (const lane of lanes) failures.set(lane, failure);
        unreported.add(failure);
      }
      running.delete(finished);
      finish();
    },
  };
}

/** Rejects with an earlier save's failure that no caller has seen yet (and marks it seen). */
function throwPendingFailure(lanes: readonly object[]): void {
  for (const lane of lanes) {
    const failure = failures.get(lane);
    if (!failure) continue;
    failures.delete(lane);
    unreported.delete(failure);
    if (failure.reported || failure.seen()) continue;
    failure.reported = true;
    throw new DcpError('PREVIOUS_SAVE_FAILED', `an earlier background save through the same writer, process group or stager failed: ${describe(failure.error)}`, { cause: failure.error });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Waits until every save in flight (of `owners`' writer/group/stager, or all of them)
 * has committed or failed, then rejects with a failure nobody has seen yet: a trainer
 * calls it before it exits. A failure is reported once (by this, by the next save, or
 * to whoever awaited `committed`).
 */
export async function waitForPendingSave(owners?: LaneOwners): Promise<void> {
  if (owners) {
    const lanes = lanesOf(owners);
    await Promise.all(lanes.map((lane) => tails.get(lane)));
    for (const lane of lanes) {
      const failure = failures.get(lane);
      failures.delete(lane);
      if (failure) reportIfUnseen(failure);
    }
    return;
  }
  while (running.size > 0) await Promise.all([...running]);
  for (const failure of [...unreported]) reportIfUnseen(failure);
}

function reportIfUnseen(failure: Failure): void {
  unreported.delete(failure);
  if (failure.reported || failure.seen()) return;
  failure.reported = true;
  throw failure.error;
}
