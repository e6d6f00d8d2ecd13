/**
 * `load`: DCP's load protocol. Every rank reads the metadata and plans its reads,
 * the coordinator may rewrite the plans, then every rank reads in place.
 * Tensors are filled in place; bytes and JSON values are assigned into `stateDict`.
 */
import type { ProcessGroup } from './process-group.js';
import { DefaultLoadPlanner } from './default-planner.js';
import { DistWrapper } from './dist-wrapper.js';
import type { LoadPlan, LoadPlanner } from './planner.js';
import type { StateDict } from './state-dict.js';
import type { StorageReader } from './storage.js';
import { resolveReader } from './storage-registry.js';

export interface LoadOptions {
  /** Where to read. Optional when `checkpointId` names a registered backend (e.g. a redis:// URL). */
  storageReader?: StorageReader;
  checkpointId?: string;
  planner?: LoadPlanner;
  processGroup?: ProcessGroup;
  coordinatorRank?: number;
  /** With the default planner: skip state dict keys the checkpoint lacks instead of failing. */
  allowPartialLoad?: boolean;
}

export async function load(stateDict: StateDict, options: LoadOptions = {}): Promise<void> {
  const dist = new DistWrapper(options.processGroup, options.coordinatorRank ?? 0);
  const { reader, owned } = resolveReader(options.storageReader, options.checkpointId);
  const planner = options.planner ?? new DefaultLoadPlanner({ allowPartialLoad: options.allowPartialLoad ?? false });
  try {
    const centralPlan = await dist.reduceScatter<LoadPlan, LoadPlan>(
      'plan',
      async () => {
        const metadata = await reader.readMetadata();
        planner.setUpPlanner(stateDict, metadata, dist.isCoordinator);
        await reader.setUpStorageReader(metadata, dist.isCoordinator, dist.rank, dist.worldSize);
        return reader.prepareLocalPlan(planner.createLocalPlan());
      },
      async (allPlans) => reader.prepareGlobalPlan(planner.createGlobalPlan(allPlans)),
    );
    await dist.allGather('read', async () => {
      await reader.readData(planner.finishPlan(centralPlan), planner);
      return null;
    });
  } finally {
    if (owned) await reader.close();
  }
}
