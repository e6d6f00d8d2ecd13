/**
 * The hook that lets a storage writer, process group or planner take part in a
 * background save (docs/format.md, "Async save"). A worker thread cannot receive live
 * objects (sockets, closures), so an object that can cross threads describes how to
 * rebuild itself there: an ES module URL, the name of a factory it exports, and
 * structured-cloneable arguments. Objects without a recipe make asyncSave upload on the
 * caller's thread instead (with a one-time warning).
 *
 *   writer:  factory(args) → StorageWriter
 *   group:   factory(args, { namespace }) → ProcessGroup (with an optional close()); the
 *            group must keep its collectives apart from the caller's own group by
 *            deriving its names from `namespace` (the same string on every rank)
 *   planner: factory(args) → SavePlanner
 */
import { DcpValueError } from '../core/errors.js';
import type { ProcessGroup } from '../core/process-group.js';
import type { SavePlanner } from '../core/planner.js';
import type { StorageWriter } from '../core/storage.js';

export interface WorkerRecipe {
  /** URL (or absolute path) of an ES module the worker imports. */
  readonly module: string;
  /** The exported factory to call. */
  readonly exportName: string;
  /** Its first argument; must survive structured cloning (postMessage). */
  readonly args?: unknown;
}

/** Implemented by writers, process groups and planners that can be rebuilt in a worker thread. */
export interface ThreadPortable {
  workerRecipe(): WorkerRecipe | undefined;
}

export interface GroupContext {
  /** Distinct per background save and equal on every rank of it. */
  readonly namespace: string;
}

export type WriterFactory = (args: unknown) => StorageWriter | Promise<StorageWriter>;
export type GroupFactory = (args: unknown, context: GroupContext) => ClosableGroup | Promise<ClosableGroup>;
export type PlannerFactory = (args: unknown) => SavePlanner | Promise<SavePlanner>;
export type ClosableGroup = ProcessGroup & { close?(): Promise<void> };

/** The recipe of `value`, if it offers one. */
export function recipeOf(value: unknown): WorkerRecipe | undefined {
  const hook = (value as Partial<ThreadPortable> | undefined)?.workerRecipe;
  return typeof hook === 'function' ? hook.call(value) : undefined;
}

/** Imports a recipe's module and calls its factory. */
export async function fromRecipe<F extends (...args: never[]) => unknown>(recipe: WorkerRecipe): Promise<F> {
  const mod = (await import(recipe.module)) as Record<string, unknown>;
  const factory = mod[recipe.exportName];
  if (typeof factory !== 'function') throw new DcpValueError('DCP_VALUE_ERROR', `${recipe.module} exports no function ${recipe.exportName}`);
  return factory as F;
}
