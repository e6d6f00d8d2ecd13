/** Messages between asyncSave (caller's thread) and its upload worker thread. */
import type { DefaultSavePlannerOptions } from '../core/default-planner.js';
import { CheckpointError, errorFromWire, errorToWire, isWireError, type WireError } from '../core/errors.js';
import type { Metadata } from '../core/metadata.js';
import type { SavePlanner } from '../core/planner.js';
import type { ProgressEvent } from '../core/progress.js';
import type { SavePhases } from '../core/tracing.js';
import type { StagedEntries } from '../core/staging.js';
import type { WorkerRecipe } from './recipe.js';

export type PlannerSpec = { readonly kind: 'default'; readonly options: DefaultSavePlannerOptions } | { readonly kind: 'recipe'; readonly recipe: WorkerRecipe };

export interface UploadJob {
  readonly type: 'save';
  readonly id: number;
  /** The staged state dict; its bytes are views of SharedArrayBuffers (shared, not copied). */
  readonly entries: StagedEntries;
  readonly checkpointId: string | undefined;
  readonly writer: WorkerRecipe;
  readonly group: WorkerRecipe | undefined;
  readonly namespace: string;
  readonly planner: PlannerSpec;
  readonly coordinatorRank: number | undefined;
  /** Send `progress` messages (the caller passed onProgress). */
  readonly progress: boolean;
  /** This rank failed before its upload (staging, an earlier save's failure): take part only to share it. */
  readonly failure?: SerializedError | undefined;
}

/** Epoch milliseconds in the worker: job received, save committed. */
export interface UploadTimes {
  readonly startedAtMs: number;
  readonly committedAtMs: number;
  /** The worker's phases (ms; stage is the caller's) and the bytes this rank wrote. */
  readonly phases: SavePhases;
  readonly bytes: number;
}

export type UploadReply =
  | { readonly type: 'committed'; readonly id: number; readonly metadata: Metadata; readonly times: UploadTimes }
  | { readonly type: 'failed'; readonly id: number; readonly error: SerializedError }
  | { readonly type: 'progress'; readonly id: number; readonly progress: ProgressEvent };

/** An error as plain data: CheckpointError keeps its step and per-rank failures. */
export interface SerializedError {
  readonly wire: WireError;
  readonly step?: string;
  readonly failures?: ReadonlyArray<readonly [number, WireError]>;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof CheckpointError) return { wire: errorToWire(error), step: error.step, failures: [...error.failures].map(([rank, e]) => [rank, errorToWire(e)] as const) };
  return { wire: errorToWire(error) };
}

/** The error as the caller's thread sees it: a CheckpointError like save()'s, or a RemoteRankError with the code. */
export function deserializeError(error: SerializedError): Error {
  if (error.step !== undefined && error.failures) return new CheckpointError(error.step, new Map(error.failures.map(([rank, wire]) => [rank, isWireError(wire) ? errorFromWire(wire) : new Error(String(wire))])));
  return errorFromWire(error.wire);
}

/**
 * A planner that fails in setUpPlanner with `error`: a rank whose save failed before the
 * upload still takes part in the protocol with it, so every rank fails at once with the
 * same CheckpointError (as with save()) instead of waiting out the collective timeout.
 */
export function failingPlanner(error: Error): SavePlanner {
  const fail = (): never => {
    throw error;
  };
  return { setUpPlanner: fail, createLocalPlan: fail, createGlobalPlan: fail, finishPlan: fail, resolveData: fail };
}

export const epochNow = (): number => performance.timeOrigin + performance.now();
