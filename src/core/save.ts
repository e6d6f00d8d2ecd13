/**
 * `save`: DCP's save protocol across the ranks of a process group.
 * plan (local plans → coordinator's global plan → scatter), write on every rank,
 * finish on the coordinator, metadata broadcast to every rank.
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

export interface SaveOptions {
  /** Where to write. Optional when `checkpointId` names a registered backend (e.g. a redis:// URL). */
  storageWriter?: StorageWriter;
  checkpointId?: string;
  planner?: SavePlanner;
  /** Omit for a single process (world size 1). */
  processGroup?: ProcessGroup;
  coordinatorRank?: number;
}

export async function save(stateDict: StateDict, options: SaveOptions = {}): Promise<Metadata> {
  // One save in flight per writer/group: waits for a background save (asyncSave) through them.
  const ticket = options.storageWriter || options.processGroup ? enterLanes(lanesOf(options)) : undefined;
  try {
    await ticket?.ready;
    return await saveNow(stateDict, options);
  } finally {
    ticket?.done();
  }
}

/** `save` without waiting for other saves through the same writer/group (asyncSave holds them itself). */
export async function saveNow(stateDict: StateDict, options: SaveOptions = {}): Promise<Metadata> {
  const dist = new DistWrapper(options.processGroup, options.coordinatorRank ?? 0);
  const { writer, owned } = resolveWriter(options.storageWriter, options.checkpointId);
  try {
    return await runSave(stateDict, writer, options.planner ?? new DefaultSavePlanner(), dist);
  } catch (error) {
    await writer.abort(error).catch(() => {});
    throw error;
  } finally {
    if (owned) await writer.close();
  }
}

async function runSave(stateDict: StateDict, writer: StorageWriter, planner: SavePlanner, dist: DistWrapper): Promise<Metadata> {
  let globalMetadata: Metadata | undefined;

  const centralPlan = await dist.reduceScatter<SavePlan, SavePlan>(
    'plan',
    async () => {
      planner.setUpPlanner(stateDict, writer.storageMeta(), dist.isCoordinator);
      await writer.setUpStorageWriter(dist.isCoordinator, dist.rank, dist.worldSize);
      const localPlan = planner.createLocalPlan();
      return writer.prepareLocalPlan(localPlan);
    },
    async (allPlans) => {
      const [globalPlans, metadata] = planner.createGlobalPlan(allPlans);
      globalMetadata = metadata;
      return writer.prepareGlobalPlan(globalPlans);
    },
  );

  return dist.allReduce<WriteResult[], Metadata>(
    'write',
    async () => writer.writeData(planner.finishPlan(centralPlan), planner),
    async (allResults) => {
      await writer.finish(globalMetadata!, allResults);
      return globalMetadata!;
    },
  );
}
