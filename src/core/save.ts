/**
 * `save`: DCP's save protocol across the ranks of a process group.
 * plan (local plans → coordinator's global plan → scatter), write on every rank,
 * finish on the coordinator, metadata broadcast to every rank. Traced on
 * `redis-dcp:save` and reported to `onProgress` (README "Events and progress").
 */
import type { ProcessGroup } from './process-group.js';
import { DefaultSavePlanner } from './default-planner.js';
import { DistWrapper } from './dist-wrapper.js';
import type { Metadata } from './metadata.js';
import type { SavePlan, SavePlanner } from './planner.js';
import type { StateDict } from './state-dict.js';
import type { StorageWriter, WriteResult } from './storage.js';
import { resolveWriter } from './storage-registry.js';
import { enterLanes, lanesOf } from './in-flight.js';
import { countingTransfers, PhaseClock, ProgressThrottle, type ProgressCallback } from './progress.js';
import { saveChannel, traced, type SaveEvent, type SavePhases } from './tracing.js';
import { elementSize } from './tensor.js';

export interface SaveOptions {
  /** Where to write. Optional when `checkpointId` names a registered backend (e.g. a redis:// URL). */
  storageWriter?: StorageWriter;
  checkpointId?: string;
  planner?: SavePlanner;
  /** Omit for a single process (world size 1). */
  processGroup?: ProcessGroup;
  coordinatorRank?: number;
  /** Called with this rank's progress at most every ~100 ms, and once at the end (phase "done"). */
  onProgress?: ProgressCallback;
}

export const SAVE_PHASES = ['plan', 'stage', 'write', 'commit'] as const satisfies ReadonlyArray<keyof SavePhases>;

/** Timing of one save on one rank: made when someone traces saves or follows progress. */
export interface SaveRun {
  readonly clock: PhaseClock<keyof SavePhases>;
  checkpointId: string | undefined;
}

/** A SaveRun when anyone will read it (a tracing subscriber or onProgress), else undefined. */
export function saveRunFor(traced: boolean, onProgress: ProgressCallback | undefined): SaveRun | undefined {
  if (!traced && !onProgress) return undefined;
  return { clock: new PhaseClock(SAVE_PHASES, onProgress ? new ProgressThrottle(onProgress) : undefined), checkpointId: undefined };
}

/** The event of a save on the `redis-dcp:save` channel, before it starts. */
export function saveEvent(options: Pick<SaveOptions, 'checkpointId' | 'processGroup'>, isAsync: boolean): SaveEvent {
  return { checkpointId: options.checkpointId, rank: options.processGroup?.rank ?? 0, worldSize: options.processGroup?.worldSize ?? 1, bytes: 0, phases: { plan: 0, stage: 0, write: 0, commit: 0 }, async: isAsync };
}

/** Copies what the run measured into the event (at the end, success or failure). */
export function fillSaveEvent(event: SaveEvent | undefined, run: SaveRun | undefined): void {
  if (!event || !run) return;
  event.checkpointId ??= run.checkpointId;
  event.bytes = run.clock.bytesDone;
  Object.assign(event.phases, run.clock.phases);
}

export async function save(stateDict: StateDict, options: SaveOptions = {}): Promise<Metadata> {
  // One save in flight per writer/group: waits for a background save (asyncSave) through them.
  const ticket = options.storageWriter || options.processGroup ? enterLanes(lanesOf(options)) : undefined;
  try {
    await ticket?.ready;
    return await traced(saveChannel, () => saveEvent(options, false), async (event) => {
      const run = saveRunFor(event !== undefined, options.onProgress);
      try {
        return await saveNow(stateDict, options, run);
      } finally {
        fillSaveEvent(event, run);
      }
    });
  } finally {
    ticket?.done();
  }
}

/** `save` without waiting for other saves through the same writer/group (asyncSave holds them itself). */
export async function saveNow(stateDict: StateDict, options: SaveOptions = {}, run?: SaveRun): Promise<Metadata> {
  const dist = new DistWrapper(options.processGroup, options.coordinatorRank ?? 0);
  const { writer, owned } = resolveWriter(options.storageWriter, options.checkpointId);
  if (run) run.checkpointId = options.checkpointId ?? checkpointIdOf(writer);
  try {
    const metadata = await runSave(stateDict, writer, options.planner ?? new DefaultSavePlanner(), dist, run?.clock);
    run?.clock.finish();
    return metadata;
  } catch (error) {
    run?.clock.stop();
    await writer.abort(error).catch(() => {});
    throw error;
  } finally {
    if (owned) await writer.close();
  }
}

function checkpointIdOf(writer: StorageWriter): string | undefined {
  try {
    return writer.storageMeta()?.checkpointId;
  } catch {
    return undefined;
  }
}

/** Bytes a plan will write: tensor chunks exactly, bytes items when their size is known. */
function plannedBytes(plan: SavePlan): number {
  let total = 0;
  for (const item of plan.items) {
    if (item.tensorData) total += item.tensorData.chunk.sizes.reduce((a, b) => a * b, 1) * elementSize(item.tensorData.properties.dtype);
    else total += item.bytesIoData?.nbytes ?? 0;
  }
  return total;
}

async function runSave(stateDict: StateDict, writer: StorageWriter, planner: SavePlanner, dist: DistWrapper, clock: PhaseClock<keyof SavePhases> | undefined): Promise<Metadata> {
  let globalMetadata: Metadata | undefined;
  clock?.enter('plan');

  const centralPlan = await dist.reduceScatter<SavePlan, SavePlan>(
    'plan',
    async () => {
      planner.setUpPlanner(stateDict, writer.storageMeta(), dist.isCoordinator);
      await writer.setUpStorageWriter(dist.isCoordinator, dist.rank, dist.worldSize);
      const localPlan = planner.createLocalPlan();
      return writer.prepareLocalPlan(localPlan, planner);
    },
    async (allPlans) => {
      const [globalPlans, metadata] = planner.createGlobalPlan(allPlans);
      globalMetadata = metadata;
      return writer.prepareGlobalPlan(globalPlans);
    },
  );

  return dist.allReduce<WriteResult[], Metadata>(
    'write',
    async () => {
      const plan = planner.finishPlan(centralPlan);
      if (clock) clock.bytesTotal = plannedBytes(plan);
      clock?.enter('write');
      const results = await countingTransfers(planner, clock, () => writer.writeData(plan, planner));
      if (clock) clock.bytesDone = clock.bytesTotal = results.reduce((n, r) => n + r.sizeInBytes, 0);
      clock?.enter('commit');
      return results;
    },
    async (allResults) => {
      await writer.finish(globalMetadata!, allResults);
      return globalMetadata!;
    },
  );
}
