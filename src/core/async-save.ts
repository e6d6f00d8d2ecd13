/**
 * `asyncSave`: DCP's async_save. The caller blocks only while the state dict is copied
 * (staged); the save protocol then runs off the caller's thread, in a worker thread with
 * its own connections, reading the staged bytes from shared memory. See docs/format.md,
 * "Async save": one save in flight per writer/process group/stager, the worker, and the
 * hook for custom writers and groups.
 *
 *   wait for the previous save through the same writer/group/stager (and report its failure)
 *   → stage (copy into reused SharedArrayBuffers)       `staged` resolves
 *   → upload: worker thread, or this thread when something cannot cross threads
 *   → commit (the same protocol as save())              `committed` resolves
 * Traced on `redis-dcp:save` (async: true, one event on the caller's thread) and reported
 * to `onProgress` (README "Events and progress").
 */
import { recipeOf, type WorkerRecipe } from '../async/recipe.js';
import { failingPlanner, serializeError, type PlannerSpec, type UploadTimes } from '../async/protocol.js';
import { uploadThread } from '../async/upload-thread.js';
import { DefaultSavePlanner } from './default-planner.js';
import { enterLanes, lanesOf } from './in-flight.js';
import type { Metadata } from './metadata.js';
import { fillSaveEvent, saveEvent, saveNow, saveRunFor, type SaveOptions, type SaveRun } from './save.js';
import { DefaultStager, stateDictEntries, stateDictFromEntries, type AsyncStager, type StagedEntries } from './staging.js';
import type { StateDict } from './state-dict.js';
import { resolveWriter } from './storage-registry.js';
import { saveChannel, type SaveEvent } from './tracing.js';

export interface AsyncSaveOptions extends SaveOptions {
  /** Copies the state dict before the upload (default: a DefaultStager kept per writer/process group, reused between saves). */
  stager?: AsyncStager;
}

export interface AsyncSaveResponse {
  /** Every byte the save needs has been copied: the caller may mutate the state dict. */
  readonly staged: Promise<void>;
  /** The checkpoint is committed (what save() resolves to); rejects with save()'s error. */
  readonly committed: Promise<Metadata>;
}

export function asyncSave(stateDict: StateDict, options: AsyncSaveOptions = {}): AsyncSaveResponse {
  const stager = options.stager ?? defaultStagerFor(options);
  const ticket = enterLanes(lanesOf({ storageWriter: options.storageWriter, processGroup: options.processGroup, stager }));
  const namespace = nextNamespace(options.processGroup);
  // A failure counts as seen by the caller if it awaited `committed` (or `staged`, when staging failed).
  const observed = { staged: false, committed: false, stagingFailed: false };
  let previousFailed = false;
  const calledAt = performance.now();
  const event: SaveEvent | undefined = saveChannel.hasSubscribers ? saveEvent(options, true) : undefined;
  const run = saveRunFor(event !== undefined, options.onProgress);

  const ready = ticket.ready.catch((error: unknown) => {
    previousFailed = true; // reported to this call; not a failure of its own
    throw error;
  });
  const staging = ready
    .then(() => (run?.clock.enter('stage'), stage(stager, stateDict)))
    .then((entries) => {
      if (event) event.blockedMs = performance.now() - calledAt;
      return entries;
    })
    .catch((error: unknown) => {
      observed.stagingFailed = true;
      throw error;
    });
  const untraced = staging.then(
    (entries) => uploadStaged(entries, options, namespace, run),
    (error: unknown) => shareFailure(error, options, namespace),
  );
  const upload = event ? saveChannel.tracePromise(() => untraced.finally(() => fillSaveEvent(event, run)), event) : untraced;
  void upload.then(
    () => ticket.done(),
    (error: unknown) => ticket.done(previousFailed ? undefined : error, () => observed.committed || (observed.stagingFailed && observed.staged)),
  );

  const staged = watched(staging.then(() => undefined), () => (observed.staged = true));
  const committed = watched(
    upload.then((r) => r.metadata),
    () => (observed.committed = true),
  );
  const response: AsyncSaveResponse = { staged, committed };
  timings.set(response, upload.then((r) => r.times, () => undefined));
  return response;
}

/** Copies the state dict; the default stager hands over its entries directly (no second walk). */
async function stage(stager: AsyncStager, stateDict: StateDict): Promise<StagedEntries> {
  if (stager instanceof DefaultStager) return stager.stageEntries(stateDict);
  const staged = await stager.stage(stateDict);
  await stager.synchronizeStaging();
  return stateDictEntries(staged);
}

interface UploadResult {
  readonly metadata: Metadata;
  /** Set when the upload ran in the worker. */
  readonly times: UploadTimes | undefined;
}

/**
 * This rank failed before its upload (staging, or an earlier save's failure reported to
 * this call): with a process group it still runs the protocol, failing at planning, so the
 * other ranks fail at once with its error instead of waiting out their timeout. Rethrows.
 */
async function shareFailure(error: unknown, options: AsyncSaveOptions, namespace: string): Promise<never> {
  if (options.processGroup) {
    const failure = error instanceof Error ? error : new Error(String(error));
    await uploadStaged([], options, namespace, undefined, failure).catch(() => undefined);
  }
  throw error;
}

/** Runs the save of the staged copy in the worker thread, or here when a piece cannot cross threads. */
async function uploadStaged(entries: StagedEntries, options: AsyncSaveOptions, namespace: string, run: SaveRun | undefined, failure?: Error): Promise<UploadResult> {
  const route = workerRoute(options);
  if ('sameThread' in route) {
    if (!failure) warnOnce(route.sameThread);
    const { stager: _stager, ...saveOptions } = options;
    return { metadata: await saveNow(stateDictFromEntries(entries), failure ? { ...saveOptions, planner: failingPlanner(failure) } : saveOptions, run), times: undefined };
  }
  run?.clock.stop(); // the worker times the phases after staging
  if (run) run.checkpointId = options.checkpointId ?? options.storageWriter?.storageMeta()?.checkpointId;
  const { metadata, times } = await uploadThread.run({
    entries,
    checkpointId: options.checkpointId,
    writer: route.writer,
    group: route.group,
    namespace,
    planner: route.planner,
    coordinatorRank: options.coordinatorRank,
    failure: failure ? serializeError(failure) : undefined,
  }, run ? (progress) => run.clock.forward(progress) : undefined);
  if (run) {
    for (const phase of ['plan', 'write', 'commit'] as const) run.clock.add(phase, times.phases[phase]);
    run.clock.bytesDone = run.clock.bytesTotal = times.bytes;
    run.clock.finish();
  }
  return { metadata, times };
}

type Route = { readonly writer: WorkerRecipe; readonly group: WorkerRecipe | undefined; readonly planner: PlannerSpec } | { readonly sameThread: string };

/** Recipes for everything the worker must rebuild, or why the upload stays on this thread. */
function workerRoute(options: AsyncSaveOptions): Route {
  let writer: WorkerRecipe | undefined;
  if (options.storageWriter) writer = recipeOf(options.storageWriter);
  else {
    // A writer chosen by checkpoint id (redis://...): made here only to learn its recipe.
    const chosen = resolveWriter(undefined, options.checkpointId).writer;
    writer = recipeOf(chosen);
    void chosen.close();
  }
  if (!writer) return { sameThread: `the storage writer (${options.storageWriter?.constructor.name}) has no workerRecipe()` };
  const group = options.processGroup ? recipeOf(options.processGroup) : undefined;
  if (options.processGroup && !group) return { sameThread: `the process group (${options.processGroup.constructor.name}) has no workerRecipe() (in-process groups cannot cross threads)` };
  const planner = plannerSpec(options.planner);
  if (!planner) return { sameThread: `the planner (${options.planner?.constructor.name}) has no workerRecipe()` };
  return { writer, group, planner };
}

function plannerSpec(planner: AsyncSaveOptions['planner']): PlannerSpec | undefined {
  if (planner === undefined) return { kind: 'default', options: {} };
  if (planner.constructor === DefaultSavePlanner) {
    const p = planner as DefaultSavePlanner;
    return { kind: 'default', options: { flattenStateDict: p.flattenStateDict, dedupReplicatedTensors: p.dedupReplicatedTensors, dedupSaveToLowestRank: p.dedupSaveToLowestRank } };
  }
  const recipe = recipeOf(planner);
  return recipe ? { kind: 'recipe', recipe } : undefined;
}

let warned = false;

function warnOnce(reason: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(`asyncSave uploads on the caller's thread: ${reason}. The upload then only progresses while the caller awaits; see docs/format.md, "Async save".`, {
    code: 'DCP_ASYNC_SAME_THREAD',
  });
}

/**
 * The default stager of a process group, or one shared by the calls that name no group
 * (single-process saves, whatever writer they pass): its buffers are reused by the next
 * save, which therefore waits for this one (one staged copy in memory).
 */
const defaultStagers = new WeakMap<object, DefaultStager>();
const SHARED_STAGER_KEY = {};

function defaultStagerFor(options: Pick<AsyncSaveOptions, 'processGroup'>): DefaultStager {
  const key = options.processGroup ?? SHARED_STAGER_KEY;
  let stager = defaultStagers.get(key);
  if (!stager) defaultStagers.set(key, (stager = new DefaultStager()));
  return stager;
}

/** The default stager asyncSave uses for these options (to inspect or close its buffers). */
export function defaultStagerOf(options: Pick<AsyncSaveOptions, 'processGroup'> = {}): DefaultStager {
  return defaultStagerFor(options);
}

/** Background saves per process group: the n-th asyncSave through a group uploads in namespace "async-n" (equal on every rank). */
const saveCounts = new WeakMap<object, number>();

function nextNamespace(group: object | undefined): string {
  if (!group) return 'async';
  const n = (saveCounts.get(group) ?? 0) + 1;
  saveCounts.set(group, n);
  return `async-${n}`;
}

/**
 * A promise that notes when the caller attaches a handler (a failure the caller saw is
 * not reported again by the next save). A subclass, because `await` on a plain Promise
 * never calls its `then`; derived promises are plain ones.
 */
class WatchedPromise<T> extends Promise<T> {
  onObserved: (() => void) | undefined;

  static override get [Symbol.species](): PromiseConstructor {
    return Promise;
  }

  override then<A = T, B = never>(onFulfilled?: ((value: T) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    this.onObserved?.();
    return super.then(onFulfilled, onRejected);
  }
}

/** `promise` as a WatchedPromise that never counts as unhandled (the caller may await only `staged`). */
function watched<T>(promise: Promise<T>, onObserved: () => void): Promise<T> {
  const out = new WatchedPromise<T>((resolve, reject) => {
    promise.then(resolve, reject);
  });
  out.onObserved = onObserved;
  Promise.prototype.then.call(out, undefined, () => undefined);
  return out;
}

const timings = new WeakMap<AsyncSaveResponse, Promise<UploadTimes | undefined>>();

/** When the worker started and committed this save (epoch ms); undefined when it ran on the caller's thread. For the benchmark. */
export function uploadTimesOf(response: AsyncSaveResponse): Promise<UploadTimes | undefined> {
  return timings.get(response) ?? Promise.resolve(undefined);
}
