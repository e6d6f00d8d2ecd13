/**
 * The diagnostics_channel tracing channels of save, load and delete (README "Events and
 * progress"): `redis-dcp:save`, `redis-dcp:load`, `redis-dcp:delete`, each a TracingChannel
 * publishing start/end/asyncStart/asyncEnd/error with one mutable event object, complete
 * (bytes, phases, error) by asyncEnd. Nothing is built or published unless someone subscribes.
 */
import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';

export const SAVE_CHANNEL = 'redis-dcp:save';
export const LOAD_CHANNEL = 'redis-dcp:load';
export const DELETE_CHANNEL = 'redis-dcp:delete';

/** Milliseconds of each phase of a save on one rank (stage: asyncSave's copy, 0 for save). */
export interface SavePhases {
  plan: number;
  stage: number;
  write: number;
  commit: number;
}

/** Every event carries the four save phases (0 where they do not apply), so one shape fits all channels. */
const NO_SAVE_PHASES: SavePhases = { plan: 0, stage: 0, write: 0, commit: 0 };

/** Milliseconds of each phase of a load on one rank: plan and read (stage, write and commit stay 0). */
export interface LoadPhases extends SavePhases {
  read: number;
}

/** Milliseconds of a delete: the whole operation in `delete` (the save phases stay 0). */
export interface DeletePhases extends SavePhases {
  delete: number;
}

interface OperationEvent<P> {
  /** The id given to the call, or the one the storage writer was made for. */
  checkpointId: string | undefined;
  readonly rank: number;
  readonly worldSize: number;
  /** Bytes this rank wrote (save), read (load), or the checkpoint held (delete); final at asyncEnd. */
  bytes: number;
  /** Final at asyncEnd. */
  readonly phases: P;
  /** Set by the channel when the operation failed (see `code` for DcpErrors). */
  error?: unknown;
  /** Set by the channel when it succeeded. */
  result?: unknown;
}

export interface SaveEvent extends OperationEvent<SavePhases> {
  /** Published by asyncSave (one event per background save, on the caller's thread). */
  readonly async: boolean;
  /** asyncSave: how long the caller was blocked (waiting for the previous save and staging) until `staged` resolved. */
  blockedMs?: number;
}

export type LoadEvent = OperationEvent<LoadPhases>;
export type DeleteEvent = OperationEvent<DeletePhases>;

export const saveChannel: TracingChannel<unknown, SaveEvent> = tracingChannel(SAVE_CHANNEL);
export const loadChannel: TracingChannel<unknown, LoadEvent> = tracingChannel(LOAD_CHANNEL);
export const deleteChannel: TracingChannel<unknown, DeleteEvent> = tracingChannel(DELETE_CHANNEL);

/**
 * Runs `fn` traced on `channel` when someone subscribes (the event is made by `event()` and
 * handed to `fn` to fill in); otherwise runs `fn(undefined)` and publishes nothing.
 */
export function traced<E extends object, T>(channel: TracingChannel<unknown, E>, event: () => E, fn: (event: E | undefined) => Promise<T>): Promise<T> {
  if (!channel.hasSubscribers) return fn(undefined);
  const e = event();
  return channel.tracePromise(() => fn(e), e);
}

/** Runs a delete traced on `redis-dcp:delete`; `fn` may set the event's bytes. */
export function tracedDelete(checkpointId: string, fn: (event: DeleteEvent | undefined) => Promise<boolean>): Promise<boolean> {
  const event = (): DeleteEvent => ({ checkpointId, rank: 0, worldSize: 1, bytes: 0, phases: { ...NO_SAVE_PHASES, delete: 0 } });
  return traced(deleteChannel, event, async (e) => {
    const started = performance.now();
    try {
      return await fn(e);
    } finally {
      if (e) e.phases.delete = performance.now() - started;
    }
  });
}
